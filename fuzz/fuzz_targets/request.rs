//! libFuzzer entry for the `request` harness (see src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| modproxy_fuzz::request(data));
