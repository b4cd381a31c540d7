//! The pure parts of khugepaged_rs, compiled for the host so their unit
//! tests run under `cargo test`.
#![allow(dead_code)]

#[path = "../../../rust/command.rs"]
mod command;

#[path = "../../../rust/result.rs"]
mod result;

#[path = "../../../rust/inject_cmd.rs"]
mod inject_cmd;

#[path = "../../../rust/outcome.rs"]
mod outcome;
