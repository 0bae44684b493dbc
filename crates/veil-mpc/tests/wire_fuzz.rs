//! Property tests of the secure engine's wire decoders (issue #18): any bytes at all decode
//! to a value or an error, never a panic or a runaway allocation; valid encodings round-trip;
//! every strict prefix of a valid encoding and any trailing byte are refused.

use proptest::prelude::*;
use veil_mpc::dealer::{LinearShares, ModelShares};
use veil_mpc::share::Shares;
use veil_mpc::transport::{KIND_OPEN, decode_open, encode_frame};
use veil_mpc::wire::{decode_material, decode_model, encode_model};

fn model_shares() -> impl Strategy<Value = ModelShares> {
    let layer = (
        prop::collection::vec(any::<u64>(), 0..24),
        prop::collection::vec(any::<u64>(), 0..24),
        prop::collection::vec(any::<u64>(), 0..8),
    )
        .prop_map(|(w, m, b)| LinearShares {
            masked_weight: w,
            weight_mask: Shares(m),
            bias: Shares(b),
        });
    prop::collection::vec(layer, 0..5).prop_map(|layers| ModelShares { layers })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_model(&bytes);
        let _ = decode_material(&bytes);
        let _ = decode_open(&bytes, 3, 4, 64, "fuzz");
        let _ = decode_open(&bytes, 3, 4, 40, "fuzz");
    }

    #[test]
    fn model_shares_round_trip_and_truncations_are_refused(m in model_shares(), cut in any::<prop::sample::Index>()) {
        let bytes = encode_model(&m);
        prop_assert_eq!(decode_model(&bytes).expect("valid"), m);
        let at = cut.index(bytes.len());
        prop_assert!(decode_model(&bytes[..at]).is_err(), "prefix of {} bytes accepted", at);
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(decode_model(&longer).is_err(), "a trailing byte was accepted");
    }

    #[test]
    fn flipped_bytes_of_valid_shares_never_panic(m in model_shares(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = encode_model(&m);
        if !bytes.is_empty() {
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        let _ = decode_model(&bytes);
    }

    #[test]
    fn open_frames_round_trip_and_wrong_ones_are_refused(values in prop::collection::vec(any::<u64>(), 0..32), step in any::<u32>(), bits in 1u32..=64) {
        // `encode_frame` writes the 4-byte length prefix the transport strips before decoding.
        let values: Vec<u64> = values.iter().map(|v| if bits == 64 { *v } else { v & ((1 << bits) - 1) }).collect();
        let frame = encode_frame(KIND_OPEN, step, &values, bits);
        let body = &frame[4..];
        prop_assert_eq!(decode_open(body, step, values.len(), bits, "peer").expect("valid"), values.clone());
        prop_assert!(decode_open(body, step.wrapping_add(1), values.len(), bits, "peer").is_err());
        prop_assert!(decode_open(body, step, values.len() + 1, bits, "peer").is_err());
        prop_assert!(decode_open(&body[..body.len() - 1], step, values.len(), bits, "peer").is_err());
    }

    #[test]
    fn hostile_open_payloads_never_panic(payload in prop::collection::vec(any::<u8>(), 0..64), expected in 0usize..16, bits in 0u32..=70) {
        let frame = veil_mpc::transport::encode_frame_bytes(KIND_OPEN, 1, &payload);
        if let Ok(v) = decode_open(&frame[4..], 1, expected, bits, "peer") {
            prop_assert_eq!(v.len(), expected);
            prop_assert!(bits >= 64 || v.iter().all(|x| x >> bits.max(1) == 0));
        }
    }
}
