//! The guest output protocol, shared by every guest of this project.
//!
//! A guest prints one line per case, `case NAME: PASS|FAIL|SKIP [detail]`, and
//! ends with exactly one line `Test result: SUCCESS|SKIP|ERROR|FAILURE` (the
//! words of XTF's runner). Lines may carry a console prefix added on the way
//! out (Xen's `(XEN) `, `(d1) `, a timestamp); the parser looks for the
//! markers anywhere in the line.

use std::fmt;

/// Status of one conformance case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaseStatus {
    Pass,
    Fail,
    Skip,
}

impl CaseStatus {
    fn parse(word: &str) -> Option<Self> {
        match word {
            "PASS" => Some(Self::Pass),
            "FAIL" => Some(Self::Fail),
            "SKIP" => Some(Self::Skip),
            _ => None,
        }
    }

    /// The lower-case spelling used in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Skip => "skip",
        }
    }
}

/// One `case` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    pub name: String,
    pub status: CaseStatus,
    pub detail: String,
}

/// The run's verdict, ordered from best to worst (XTF keeps the worst one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Success,
    Skip,
    Error,
    Failure,
    /// No verdict line: the guest hung, crashed, or QEMU died.
    Crash,
}

impl Verdict {
    fn parse(word: &str) -> Option<Self> {
        match word {
            "SUCCESS" => Some(Self::Success),
            "SKIP" => Some(Self::Skip),
            "ERROR" => Some(Self::Error),
            "FAILURE" => Some(Self::Failure),
            _ => None,
        }
    }

    /// Process exit code, as XTF's runner uses them (1 and 2 are left to
    /// interpreters and argument errors).
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Success => 0,
            Self::Skip => 3,
            Self::Error => 4,
            Self::Failure => 5,
            Self::Crash => 6,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Success => "SUCCESS",
            Self::Skip => "SKIP",
            Self::Error => "ERROR",
            Self::Failure => "FAILURE",
            Self::Crash => "CRASH",
        })
    }
}

/// What one console line means to the runner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    Case(Case),
    Verdict(Verdict),
    /// A line that looks like a protocol line but is malformed; reported so a
    /// typo in a guest cannot silently drop a case.
    Malformed(String),
    Other,
}

const CASE_MARK: &str = "case ";
const VERDICT_MARK: &str = "Test result: ";

/// Classify one console line (without its line ending).
pub fn parse_line(raw: &str) -> Line {
    let line = raw.trim_end_matches(['\r', '\n']);
    if let Some(pos) = line.find(VERDICT_MARK) {
        let rest = line[pos + VERDICT_MARK.len()..].trim();
        // XTF allows " with warnings" after SUCCESS.
        let word = rest.split_whitespace().next().unwrap_or("");
        return match Verdict::parse(word) {
            Some(v) => Line::Verdict(v),
            None => Line::Malformed(format!("unknown verdict {rest:?}")),
        };
    }
    let Some(pos) = line.find(CASE_MARK) else {
        return Line::Other;
    };
    // Only a "case" at the start of the guest's text counts: it must be the
    // first word after any console prefix ending in ") " or "] ".
    let before = &line[..pos];
    if !(before.is_empty() || before.ends_with(") ") || before.ends_with("] ")) {
        return Line::Other;
    }
    let rest = &line[pos + CASE_MARK.len()..];
    let Some((name, tail)) = rest.split_once(": ") else {
        return Line::Malformed(format!("case line without ': ': {rest:?}"));
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Line::Malformed(format!("bad case name {name:?}"));
    }
    let tail = tail.trim();
    let (word, detail) = tail.split_once(' ').unwrap_or((tail, ""));
    match CaseStatus::parse(word) {
        Some(status) => Line::Case(Case {
            name: name.to_string(),
            status,
            detail: detail.trim().to_string(),
        }),
        None => Line::Malformed(format!("case {name}: unknown status {word:?}")),
    }
}

/// Everything gathered from one run's console.
#[derive(Clone, Debug, Default)]
pub struct Transcript {
    pub cases: Vec<Case>,
    pub verdict: Option<Verdict>,
    /// Problems the runner found in the guest's output.
    pub problems: Vec<String>,
}

impl Transcript {
    /// Feed one console line.
    pub fn feed(&mut self, raw: &str) {
        match parse_line(raw) {
            Line::Case(case) => {
                if self.verdict.is_some() {
                    self.problems
                        .push(format!("case {} reported after the verdict", case.name));
                }
                if self.cases.iter().any(|c| c.name == case.name) {
                    self.problems
                        .push(format!("case {} reported twice", case.name));
                }
                self.cases.push(case);
            }
            Line::Verdict(v) => {
                if let Some(prev) = self.verdict {
                    self.problems
                        .push(format!("second verdict {v} after {prev}"));
                    self.verdict = Some(prev.max(v));
                } else {
                    self.verdict = Some(v);
                }
            }
            Line::Malformed(why) => self.problems.push(why),
            Line::Other => {}
        }
    }

    /// The verdict the runner reports: the guest's, but never better than
    /// what its own cases and the runner's checks show.
    pub fn final_verdict(&self) -> Verdict {
        let Some(guest) = self.verdict else {
            return Verdict::Crash;
        };
        let mut v = guest;
        if self.cases.iter().any(|c| c.status == CaseStatus::Fail) {
            v = v.max(Verdict::Failure);
        }
        if !self.problems.is_empty() {
            v = v.max(Verdict::Error);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_case_lines_with_and_without_prefix() {
        let want = Line::Case(Case {
            name: "start_info_magic".into(),
            status: CaseStatus::Pass,
            detail: "xen-3.0-x86_32p".into(),
        });
        assert_eq!(
            parse_line("case start_info_magic: PASS xen-3.0-x86_32p"),
            want
        );
        assert_eq!(
            parse_line("(d1) case start_info_magic: PASS xen-3.0-x86_32p\r"),
            want
        );
        assert_eq!(
            parse_line("[2026-11-25 10:00:00] case start_info_magic: PASS xen-3.0-x86_32p"),
            want
        );
        assert_eq!(
            parse_line("case x: SKIP"),
            Line::Case(Case {
                name: "x".into(),
                status: CaseStatus::Skip,
                detail: String::new()
            })
        );
    }

    #[test]
    fn ignores_case_inside_prose() {
        assert_eq!(parse_line("(XEN) in case of emergency: PASS"), Line::Other);
        assert_eq!(parse_line("nothing here"), Line::Other);
    }

    #[test]
    fn rejects_malformed_protocol_lines() {
        assert!(matches!(parse_line("case foo: MAYBE"), Line::Malformed(_)));
        assert!(matches!(parse_line("case foo PASS"), Line::Malformed(_)));
        assert!(matches!(parse_line("case : PASS"), Line::Malformed(_)));
        assert!(matches!(
            parse_line("Test result: GREAT"),
            Line::Malformed(_)
        ));
    }

    #[test]
    fn verdicts_and_exit_codes() {
        assert_eq!(
            parse_line("Test result: SUCCESS"),
            Line::Verdict(Verdict::Success)
        );
        assert_eq!(
            parse_line("(XEN) Test result: SUCCESS with warnings"),
            Line::Verdict(Verdict::Success)
        );
        let codes: Vec<i32> = [
            Verdict::Success,
            Verdict::Skip,
            Verdict::Error,
            Verdict::Failure,
            Verdict::Crash,
        ]
        .iter()
        .map(|v| v.exit_code())
        .collect();
        assert_eq!(codes, [0, 3, 4, 5, 6]);
    }

    #[test]
    fn transcript_without_verdict_is_a_crash() {
        let mut t = Transcript::default();
        t.feed("case a: PASS");
        assert_eq!(t.final_verdict(), Verdict::Crash);
    }

    #[test]
    fn failing_case_overrides_a_success_verdict() {
        let mut t = Transcript::default();
        t.feed("case a: PASS");
        t.feed("case b: FAIL expected 3, got 4");
        t.feed("Test result: SUCCESS");
        assert_eq!(t.final_verdict(), Verdict::Failure);
        assert_eq!(t.cases[1].detail, "expected 3, got 4");
    }

    #[test]
    fn duplicate_cases_and_second_verdicts_are_errors() {
        let mut t = Transcript::default();
        t.feed("case a: PASS");
        t.feed("case a: PASS");
        t.feed("Test result: SUCCESS");
        assert_eq!(t.final_verdict(), Verdict::Error);

        let mut t = Transcript::default();
        t.feed("Test result: SKIP");
        t.feed("Test result: FAILURE");
        assert_eq!(t.verdict, Some(Verdict::Failure));
        assert_eq!(t.problems.len(), 1);
    }
}
