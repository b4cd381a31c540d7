//! The pure parts of khugepaged_rs (rust/abi/), compiled for the host so
//! their unit tests run under `cargo test`.
#![allow(dead_code)]

#[path = "../../../rust/abi/mod.rs"]
mod abi;
