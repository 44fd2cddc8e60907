//! Hypercall error codes: `errno.h`.
//!
//! A failing hypercall returns the negated code in `%eax`. The values are the
//! Linux (x86) errno values. `EINTR` and `ERESTART` are Xen-internal (the
//! header defines them only for `__XEN__`); they are listed so that a stray
//! one still gets its name in a diagnostic.

use core::fmt;

/// Largest errno a hypercall return can carry: a `long` result in
/// `-MAX_ERRNO..=-1` is an error, anything else a value (the convention Linux
/// uses for hypercall and system-call returns).
pub const MAX_ERRNO: isize = 4095;

macro_rules! xen_errors {
    ($($name:ident = $value:expr, $doc:expr;)*) => {
        /// A Xen error code (`enum xen_errno` / `XEN_E*`), or one this crate
        /// does not know ([`XenError::Other`], holding the positive value).
        #[allow(clippy::upper_case_acronyms)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum XenError {
            $(
                #[doc = $doc]
                $name,
            )*
            /// An errno value not in `errno.h` (positive).
            Other(i32),
        }

        impl XenError {
            /// Every named error, in `errno.h` order.
            pub const ALL: &'static [XenError] = &[$(XenError::$name),*];

            /// The error for positive errno `errno`.
            pub const fn from_errno(errno: i32) -> Self {
                match errno {
                    $($value => XenError::$name,)*
                    other => XenError::Other(other),
                }
            }

            /// The positive errno value.
            pub const fn errno(self) -> i32 {
                match self {
                    $(XenError::$name => $value,)*
                    XenError::Other(value) => value,
                }
            }

            /// Xen's spelling ("EINVAL"); "E?" for [`XenError::Other`].
            pub const fn name(self) -> &'static str {
                match self {
                    $(XenError::$name => stringify!($name),)*
                    XenError::Other(_) => "E?",
                }
            }
        }
    };
}

xen_errors! {
    EPERM = 1, "Operation not permitted.";
    ENOENT = 2, "No such file or directory.";
    ESRCH = 3, "No such process.";
    EINTR = 4, "Interrupted system call (Xen-internal).";
    EIO = 5, "I/O error.";
    ENXIO = 6, "No such device or address.";
    E2BIG = 7, "Argument list too long.";
    ENOEXEC = 8, "Exec format error.";
    EBADF = 9, "Bad file number.";
    ECHILD = 10, "No child processes.";
    EAGAIN = 11, "Try again (`EWOULDBLOCK` is the same value).";
    ENOMEM = 12, "Out of memory.";
    EACCES = 13, "Permission denied.";
    EFAULT = 14, "Bad address.";
    EBUSY = 16, "Device or resource busy.";
    EEXIST = 17, "File exists.";
    EXDEV = 18, "Cross-device link.";
    ENODEV = 19, "No such device.";
    ENOTDIR = 20, "Not a directory.";
    EISDIR = 21, "Is a directory.";
    EINVAL = 22, "Invalid argument.";
    ENFILE = 23, "File table overflow.";
    EMFILE = 24, "Too many open files.";
    ENOSPC = 28, "No space left on device.";
    EROFS = 30, "Read-only file system.";
    EMLINK = 31, "Too many links.";
    EDOM = 33, "Math argument out of domain of function.";
    ERANGE = 34, "Math result not representable.";
    EDEADLK = 35, "Resource deadlock would occur (`EDEADLOCK` is the same value).";
    ENAMETOOLONG = 36, "File name too long.";
    ENOLCK = 37, "No record locks available.";
    ENOSYS = 38, "Function not implemented.";
    ENOTEMPTY = 39, "Directory not empty.";
    ENODATA = 61, "No data available.";
    ETIME = 62, "Timer expired.";
    EBADMSG = 74, "Not a data message.";
    EOVERFLOW = 75, "Value too large for defined data type.";
    EILSEQ = 84, "Illegal byte sequence.";
    ERESTART = 85, "Interrupted system call should be restarted (Xen-internal).";
    ENOTSOCK = 88, "Socket operation on non-socket.";
    EMSGSIZE = 90, "Message too large.";
    EOPNOTSUPP = 95, "Operation not supported.";
    EADDRINUSE = 98, "Address already in use.";
    EADDRNOTAVAIL = 99, "Cannot assign requested address.";
    ENOBUFS = 105, "No buffer space available.";
    EISCONN = 106, "Transport endpoint is already connected.";
    ENOTCONN = 107, "Transport endpoint is not connected.";
    ETIMEDOUT = 110, "Connection timed out.";
    ECONNREFUSED = 111, "Connection refused.";
}

impl XenError {
    /// `EWOULDBLOCK`, an alias of `EAGAIN`.
    pub const EWOULDBLOCK: Self = XenError::EAGAIN;
    /// `EDEADLOCK`, an alias of `EDEADLK`.
    pub const EDEADLOCK: Self = XenError::EDEADLK;

    /// Splits a raw hypercall result: `-MAX_ERRNO..=-1` is an error, any other
    /// value a success value (reinterpreted as unsigned, so a 32-bit result
    /// such as a debug register above 0x7FFFFFFF comes back intact).
    pub const fn from_ret(ret: isize) -> Result<usize, XenError> {
        if ret < 0 && ret >= -MAX_ERRNO {
            Err(XenError::from_errno(-ret as i32))
        } else {
            Ok(ret as usize)
        }
    }

    /// The raw result a hypercall failing with this error returns (the
    /// negated errno), e.g. for scripting a recording backend.
    pub const fn to_ret(self) -> isize {
        -(self.errno() as isize)
    }
}

impl fmt::Display for XenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XenError::Other(value) => write!(f, "errno {value}"),
            known => write!(f, "{} ({})", known.name(), known.errno()),
        }
    }
}

impl core::error::Error for XenError {}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;

    use super::*;

    /// `errno.h` as data: (name, value).
    const ERRNO_H: &[(&str, i32)] = &[
        ("EPERM", 1),
        ("ENOENT", 2),
        ("ESRCH", 3),
        ("EINTR", 4),
        ("EIO", 5),
        ("ENXIO", 6),
        ("E2BIG", 7),
        ("ENOEXEC", 8),
        ("EBADF", 9),
        ("ECHILD", 10),
        ("EAGAIN", 11),
        ("ENOMEM", 12),
        ("EACCES", 13),
        ("EFAULT", 14),
        ("EBUSY", 16),
        ("EEXIST", 17),
        ("EXDEV", 18),
        ("ENODEV", 19),
        ("ENOTDIR", 20),
        ("EISDIR", 21),
        ("EINVAL", 22),
        ("ENFILE", 23),
        ("EMFILE", 24),
        ("ENOSPC", 28),
        ("EROFS", 30),
        ("EMLINK", 31),
        ("EDOM", 33),
        ("ERANGE", 34),
        ("EDEADLK", 35),
        ("ENAMETOOLONG", 36),
        ("ENOLCK", 37),
        ("ENOSYS", 38),
        ("ENOTEMPTY", 39),
        ("ENODATA", 61),
        ("ETIME", 62),
        ("EBADMSG", 74),
        ("EOVERFLOW", 75),
        ("EILSEQ", 84),
        ("ERESTART", 85),
        ("ENOTSOCK", 88),
        ("EMSGSIZE", 90),
        ("EOPNOTSUPP", 95),
        ("EADDRINUSE", 98),
        ("EADDRNOTAVAIL", 99),
        ("ENOBUFS", 105),
        ("EISCONN", 106),
        ("ENOTCONN", 107),
        ("ETIMEDOUT", 110),
        ("ECONNREFUSED", 111),
    ];

    #[test]
    fn every_errno_maps_both_ways() {
        assert_eq!(XenError::ALL.len(), ERRNO_H.len());
        for (&(name, value), &err) in ERRNO_H.iter().zip(XenError::ALL) {
            assert_eq!(err.name(), name);
            assert_eq!(err.errno(), value, "{name}");
            assert_eq!(XenError::from_errno(value), err, "{name}");
            assert_eq!(XenError::from_ret(-(value as isize)), Err(err), "{name}");
            assert_eq!(err.to_ret(), -(value as isize));
        }
    }

    #[test]
    fn unknown_values_are_other() {
        for value in [0, 15, 25, 40, 112, 4095] {
            assert_eq!(XenError::from_errno(value), XenError::Other(value));
            assert_eq!(XenError::Other(value).errno(), value);
        }
        assert_eq!(XenError::from_ret(-15), Err(XenError::Other(15)));
        assert_eq!(XenError::Other(15).name(), "E?");
    }

    #[test]
    fn from_ret_splits_values_and_errors() {
        assert_eq!(XenError::from_ret(0), Ok(0));
        assert_eq!(XenError::from_ret(0x0004_0011), Ok(0x0004_0011));
        assert_eq!(XenError::from_ret(-1), Err(XenError::EPERM));
        assert_eq!(XenError::from_ret(-38), Err(XenError::ENOSYS));
        assert_eq!(XenError::from_ret(-4095), Err(XenError::Other(4095)));
        // Below -MAX_ERRNO a result is a value: a 32-bit return such as
        // 0xFFFF0FF0 (DR6) read as a negative long.
        assert_eq!(XenError::from_ret(-4096), Ok(-4096isize as usize));
        assert_eq!(
            XenError::from_ret(0xFFFF_0FF0u32 as i32 as isize),
            Ok(0xFFFF_0FF0u32 as i32 as isize as usize)
        );
    }

    #[test]
    fn aliases_and_display() {
        assert_eq!(XenError::EWOULDBLOCK, XenError::EAGAIN);
        assert_eq!(XenError::EDEADLOCK.errno(), 35);
        assert_eq!(XenError::EINVAL.to_string(), "EINVAL (22)");
        assert_eq!(XenError::Other(300).to_string(), "errno 300");
    }
}
