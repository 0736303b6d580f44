//! Every masking implementation, in place or copying, agrees with the
//! bytewise reference, at any offset and alignment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsproto_core::frame::mask::{
    apply_mask, apply_mask_bytewise, apply_mask_words, copy_masked, copy_masked_words,
};

fuzz_target!(|data: &[u8]| {
    let [k0, k1, k2, k3, offset, align, payload @ ..] = data else {
        return;
    };
    let key = [*k0, *k1, *k2, *k3];
    let align = usize::from(*align % 8);
    let offset = usize::from(*offset);
    let mut reference = payload.to_vec();
    apply_mask_bytewise(&mut reference, key, offset);
    let mut storage = vec![0u8; payload.len() + 8];
    for f in [apply_mask, apply_mask_words] {
        let slice = &mut storage[align..align + payload.len()];
        slice.copy_from_slice(payload);
        f(slice, key, offset);
        assert_eq!(slice, &reference[..]);
    }
    // The copying kernels, into a destination at another alignment that is
    // longer than the payload: the bytes after it must stay zero.
    for f in [copy_masked, copy_masked_words] {
        storage.fill(0);
        let dst_align = (align + 3) % 8;
        let dst = &mut storage[dst_align..dst_align + payload.len() + 1];
        f(dst, payload, key, offset);
        assert_eq!(&dst[..payload.len()], &reference[..]);
        assert_eq!(dst[payload.len()], 0);
    }
});
