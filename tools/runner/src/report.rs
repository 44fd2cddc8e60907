//! Machine-readable reports of a run: JSON (the project's own format, also
//! the input of the parity check) and JUnit XML (for CI dashboards).

use serde_json::{json, Value};

use crate::protocol::{CaseStatus, Transcript, Verdict};

/// A finished run, ready to be written out.
#[derive(Debug)]
pub struct Report<'a> {
    /// Where the guest ran: "xen-dom0", "xen-domU", "native-rom", "native".
    pub platform: &'a str,
    pub transcript: &'a Transcript,
    pub verdict: Verdict,
    /// Why the runner decided the verdict itself (timeout, no PV32, ...).
    pub runner_note: Option<String>,
    pub seconds: f64,
}

impl Report<'_> {
    /// `{"platform", "cases": [{"name","status","detail"}], "result", ...}`.
    pub fn to_json(&self) -> Value {
        let cases: Vec<Value> = self
            .transcript
            .cases
            .iter()
            .map(|c| json!({"name": c.name, "status": c.status.as_str(), "detail": c.detail}))
            .collect();
        let mut v = json!({
            "platform": self.platform,
            "cases": cases,
            "result": self.verdict.to_string(),
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
        });
        if !self.transcript.problems.is_empty() {
            v["problems"] = json!(self.transcript.problems);
        }
        if let Some(note) = &self.runner_note {
            v["note"] = json!(note);
        }
        v
    }

    /// One `<testsuite>` with a `<testcase>` per case; a run without a
    /// verdict (or with problems) adds a failing `verdict` test case so that
    /// JUnit consumers see the crash.
    pub fn to_junit(&self) -> String {
        let t = self.transcript;
        let failures = t
            .cases
            .iter()
            .filter(|c| c.status == CaseStatus::Fail)
            .count();
        let skipped = t
            .cases
            .iter()
            .filter(|c| c.status == CaseStatus::Skip)
            .count();
        let verdict_bad = !matches!(self.verdict, Verdict::Success | Verdict::Skip);
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out += &format!(
            "<testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">\n",
            xml_escape(self.platform),
            t.cases.len() + 1,
            failures + usize::from(verdict_bad),
            skipped,
            self.seconds
        );
        for c in &t.cases {
            out += &format!(
                "  <testcase classname=\"{}\" name=\"{}\">",
                xml_escape(self.platform),
                xml_escape(&c.name)
            );
            match c.status {
                CaseStatus::Pass => {}
                CaseStatus::Fail => {
                    out += &format!("<failure message=\"{}\"/>", xml_escape(&c.detail))
                }
                CaseStatus::Skip => {
                    out += &format!("<skipped message=\"{}\"/>", xml_escape(&c.detail))
                }
            }
            out += "</testcase>\n";
        }
        out += &format!(
            "  <testcase classname=\"{}\" name=\"verdict\">",
            xml_escape(self.platform)
        );
        if verdict_bad {
            let mut msg = format!("Test result: {}", self.verdict);
            if let Some(n) = &self.runner_note {
                msg += &format!(" ({n})");
            }
            for p in &t.problems {
                msg += &format!("; {p}");
            }
            out += &format!("<failure message=\"{}\"/>", xml_escape(&msg));
        }
        out += "</testcase>\n</testsuite>\n";
        out
    }
}

fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' => o.push_str(&format!("&#{};", c as u32)),
            c => o.push(c),
        }
    }
    o
}

/// Compare the cases of two JSON reports: same names, same statuses.
/// Returns the list of differences (empty = parity holds).
pub fn parity(a: &Value, b: &Value) -> Result<Vec<String>, String> {
    let cases = |v: &Value| -> Result<Vec<(String, String)>, String> {
        let arr = v["cases"]
            .as_array()
            .ok_or_else(|| "report has no \"cases\" array".to_string())?;
        arr.iter()
            .map(|c| {
                let name = c["name"].as_str().ok_or("case without a name")?;
                let status = c["status"].as_str().ok_or("case without a status")?;
                Ok((name.to_string(), status.to_string()))
            })
            .collect::<Result<_, &str>>()
            .map_err(str::to_string)
    };
    let pa = v_platform(a);
    let pb = v_platform(b);
    let ca = cases(a)?;
    let cb = cases(b)?;
    let mut diffs = Vec::new();
    for (name, sa) in &ca {
        match cb.iter().find(|(n, _)| n == name) {
            None => diffs.push(format!("case {name}: only on {pa}")),
            Some((_, sb)) if sb != sa => {
                diffs.push(format!("case {name}: {sa} on {pa}, {sb} on {pb}"))
            }
            _ => {}
        }
    }
    for (name, _) in &cb {
        if !ca.iter().any(|(n, _)| n == name) {
            diffs.push(format!("case {name}: only on {pb}"));
        }
    }
    if a["result"] != b["result"] {
        diffs.push(format!(
            "result: {} on {pa}, {} on {pb}",
            a["result"], b["result"]
        ));
    }
    Ok(diffs)
}

fn v_platform(v: &Value) -> String {
    v["platform"].as_str().unwrap_or("?").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript(lines: &[&str]) -> Transcript {
        let mut t = Transcript::default();
        for l in lines {
            t.feed(l);
        }
        t
    }

    #[test]
    fn json_report_has_the_documented_shape() {
        let t = transcript(&[
            "case a: PASS",
            "case b: SKIP no ROM",
            "Test result: SUCCESS",
        ]);
        let r = Report {
            platform: "xen-dom0",
            transcript: &t,
            verdict: t.final_verdict(),
            runner_note: None,
            seconds: 1.5,
        };
        let v = r.to_json();
        assert_eq!(v["platform"], "xen-dom0");
        assert_eq!(v["result"], "SUCCESS");
        assert_eq!(v["cases"][1]["status"], "skip");
        assert_eq!(v["cases"][1]["detail"], "no ROM");
        assert!(v.get("problems").is_none());
    }

    #[test]
    fn junit_marks_failures_and_crashes() {
        let t = transcript(&["case a: FAIL <bad> & \"worse\""]);
        let r = Report {
            platform: "native",
            transcript: &t,
            verdict: t.final_verdict(),
            runner_note: Some("timeout after 5 s".into()),
            seconds: 5.0,
        };
        let x = r.to_junit();
        assert!(x.contains("tests=\"2\" failures=\"2\""), "{x}");
        assert!(x.contains("&lt;bad&gt; &amp; &quot;worse&quot;"), "{x}");
        assert!(x.contains("Test result: CRASH (timeout after 5 s)"), "{x}");
    }

    #[test]
    fn parity_finds_every_difference() {
        let a = json!({"platform": "native", "result": "SUCCESS", "cases": [
            {"name": "x", "status": "pass"}, {"name": "y", "status": "pass"},
            {"name": "z", "status": "skip"}]});
        let b = json!({"platform": "xen-dom0", "result": "FAILURE", "cases": [
            {"name": "x", "status": "pass"}, {"name": "y", "status": "fail"},
            {"name": "w", "status": "pass"}]});
        let d = parity(&a, &b).unwrap();
        assert_eq!(
            d,
            [
                "case y: pass on native, fail on xen-dom0",
                "case z: only on native",
                "case w: only on xen-dom0",
                "result: \"SUCCESS\" on native, \"FAILURE\" on xen-dom0",
            ]
        );
        assert!(parity(&a, &a).unwrap().is_empty());
        assert!(parity(&a, &json!({})).is_err());
    }
}
