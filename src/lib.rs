//! The `deskbridge` command line: the local runner and the operator commands. Every command
//! calls the same handler code as the Lambda functions.

pub mod commands;
pub mod output;
pub mod settings;
pub mod stack;
