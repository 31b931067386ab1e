//! The signature checks on their own, with secret, body and header values split by `arbitrary`:
//! `deskbridge_fuzz::check_signatures`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| deskbridge_fuzz::check_signatures_bytes(data));
