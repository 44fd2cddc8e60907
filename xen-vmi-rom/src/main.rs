//! Placeholder; the PV image lands with the foundation issue.
#![no_std]
#![no_main]
