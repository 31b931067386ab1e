//! Any text as the `DESKBRIDGE_CONFIG` YAML file: `deskbridge_fuzz::check_config_file`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| deskbridge_fuzz::check_config_file(data));
