#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| streamprep_fuzz_targets::queue_wire(data));
