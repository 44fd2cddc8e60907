//! The queue of pending page-table updates and its flush rules.
#![cfg_attr(not(test), no_std)]
