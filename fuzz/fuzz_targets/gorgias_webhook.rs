//! Gorgias webhooks: random headers and body through signature verification (with a configured
//! secret) and through the parser. Input layout and properties: `deskbridge_fuzz::check_webhook`.
#![no_main]

use deskbridge_shared::model::Source;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| deskbridge_fuzz::check_webhook(&Source::Gorgias, data));
