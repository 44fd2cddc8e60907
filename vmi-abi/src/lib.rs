//! The VMI ROM interface (API 3.0) as Linux's CONFIG_VMI used it.
#![cfg_attr(not(test), no_std)]
