//! The receive path: the events for one buffer equal the events for the same
//! bytes fed in fuzzer-chosen chunks through a small buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsproto_fuzz::{connection, feed, normalize, output_len};

fuzz_target!(|data: &[u8]| {
    let [selector, a, b, c, input @ ..] = data else {
        return;
    };
    let out_len = output_len(*selector);
    let whole = normalize(feed(
        &mut connection(*selector),
        input,
        &[],
        input.len() + 1,
        out_len,
    ));
    let lengths = [usize::from(*a), usize::from(*b), usize::from(*c)];
    let capacity = 140 + usize::from(selector >> 6) * 64;
    let chunked = normalize(feed(
        &mut connection(*selector),
        input,
        &lengths,
        capacity,
        out_len,
    ));
    assert_eq!(whole, chunked);
});
