//! libFuzzer entry for the `paths` harness (see src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| modproxy_fuzz::paths(data));
