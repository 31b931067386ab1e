//! The `deskbridge` command line: the local runner and the operator commands. Every command
//! calls the same handler code as the Lambda functions.

pub mod admin;
pub mod config_cmd;
pub mod demo;
pub mod ops;
pub mod output;
pub mod serve;
pub mod settings;
pub mod stack;
