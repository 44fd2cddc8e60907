//! A short text without allocation (failure reasons, protocol details).

use core::fmt::{self, Write};

/// Bytes a [`Text`] holds; what does not fit is cut, marked "...".
pub const TEXT_BYTES: usize = 480;

/// A short formatted text.
#[derive(Clone, Copy)]
pub struct Text {
    buf: [u8; TEXT_BYTES],
    len: usize,
    cut: bool,
}

impl Text {
    /// An empty text.
    pub const fn new() -> Self {
        Text {
            buf: [0; TEXT_BYTES],
            len: 0,
            cut: false,
        }
    }

    /// Formatted text.
    pub fn from_fmt(args: fmt::Arguments<'_>) -> Self {
        let mut t = Text::new();
        let _ = t.write_fmt(args);
        t
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<invalid utf-8>")
    }
}

impl Default for Text {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Write for Text {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            let mut tmp = [0u8; 4];
            let bytes = c.encode_utf8(&mut tmp).as_bytes();
            if self.len + bytes.len() > self.buf.len() - 3 {
                if !self.cut {
                    self.cut = true;
                    self.buf[self.len..self.len + 3].copy_from_slice(b"...");
                    self.len += 3;
                }
                return Ok(());
            }
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        }
        Ok(())
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure with a formatted reason.
macro_rules! failed {
    ($($arg:tt)*) => { $crate::text::Text::from_fmt(format_args!($($arg)*)) };
}
pub(crate) use failed;
