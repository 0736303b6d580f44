//! The receive path: the events for one buffer equal the events for the same
//! bytes fed in fuzzer-chosen chunks through a small buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsproto_fuzz::{connection, feed, normalize};

fuzz_target!(|data: &[u8]| {
    let [selector, a, b, c, input @ ..] = data else {
        return;
    };
    let whole = normalize(feed(&mut connection(*selector), input, &[], input.len() + 1));
    let lengths = [usize::from(*a), usize::from(*b), usize::from(*c)];
    let capacity = 140 + usize::from(selector >> 6) * 64;
    let chunked = normalize(feed(&mut connection(*selector), input, &lengths, capacity));
    assert_eq!(whole, chunked);
});
