//! A short text without allocation (failure reasons, protocol details).

use core::fmt::{self, Write};

/// Bytes a [`Text`] holds by default; what does not fit is cut, marked
/// "...".
pub const TEXT_BYTES: usize = 480;

/// A short formatted text of [`TEXT_BYTES`] bytes at most.
pub type Text = TextBuf<TEXT_BYTES>;

/// A short formatted text of at most `N` bytes (a kernel that keeps many
/// of them picks a smaller `N`).
#[derive(Clone, Copy)]
pub struct TextBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
    cut: bool,
}

impl<const N: usize> TextBuf<N> {
    /// An empty text.
    pub const fn new() -> Self {
        TextBuf {
            buf: [0; N],
            len: 0,
            cut: false,
        }
    }

    /// Formatted text.
    pub fn from_fmt(args: fmt::Arguments<'_>) -> Self {
        let mut t = Self::new();
        let _ = t.write_fmt(args);
        t
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<invalid utf-8>")
    }
}

impl<const N: usize> Default for TextBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Debug for TextBuf<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> Write for TextBuf<N> {
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

impl<const N: usize> fmt::Display for TextBuf<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure with a formatted reason.
macro_rules! failed {
    ($($arg:tt)*) => { $crate::text::Text::from_fmt(format_args!($($arg)*)) };
}
pub(crate) use failed;
