//! libFuzzer entry for the `boundary` harness (see src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| modproxy_fuzz::boundary(data));
