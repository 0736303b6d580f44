//! Frame headers: whatever parses re-encodes to the same bytes, and encoding
//! any header parses back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsproto_core::frame::{FrameHeader, Status};

fuzz_target!(|data: &[u8]| {
    if let Ok(Status::Complete((header, used))) = FrameHeader::parse(data) {
        let mut out = [0u8; FrameHeader::MAX_LEN];
        let n = header.encode(&mut out).expect("a header fits 14 bytes");
        assert_eq!(n, used);
        assert_eq!(&out[..n], &data[..used]);
        let _ = header.validate(
            data.len().is_multiple_of(2),
            wsproto_core::frame::RsvBits::RSV1,
        );
    }
    if data.len() >= 13 {
        let mut header = FrameHeader::new(
            data[0] & 0x80 != 0,
            wsproto_core::frame::Opcode::from_bits(data[0]),
            u64::from_le_bytes(data[1..9].try_into().unwrap()) >> 1,
        );
        header.rsv = wsproto_core::frame::RsvBits::from_bits(data[0] >> 4);
        header.mask = (data[0] & 0x08 != 0).then(|| data[9..13].try_into().unwrap());
        let mut out = [0u8; FrameHeader::MAX_LEN];
        let n = header.encode(&mut out).unwrap();
        assert_eq!(
            FrameHeader::parse(&out[..n]),
            Ok(Status::Complete((header, n)))
        );
    }
});
