//! Event channel state, upcall mask logic and port-to-vector routing.
#![cfg_attr(not(test), no_std)]
