//! Property tests of the runtime's frame decoder (issue #18): any bytes decode to a frame or
//! an error, never a panic or a runaway allocation; frames round-trip; every strict prefix of
//! a valid frame and any trailing byte are refused.

use proptest::prelude::*;
use veil_net::wire::Envelope;

fn finite() -> impl Strategy<Value = f32> {
    -1e6f32..1e6f32
}

fn envelope() -> impl Strategy<Value = Envelope> {
    prop_oneof![
        Just(Envelope::Ack),
        "[a-z0-9 ]{0,40}".prop_map(Envelope::Rejected),
        (any::<u64>(), prop::collection::vec(finite(), 0..64))
            .prop_map(|(request, input)| Envelope::Infer { request, input }),
        (prop::collection::vec(finite(), 0..16), any::<u32>()).prop_map(|(logits, attempts)| {
            Envelope::Result {
                logits,
                attempts,
                trace: Vec::new(),
            }
        }),
        (
            "[a-z]{1,8}",
            1.0f64..1e12,
            1u64..(1 << 40),
            1.0f64..1e12,
            "[0-9.:]{1,21}"
        )
            .prop_map(|(role, e, memory, rate, addr)| Envelope::Register {
                role,
                class: veil_plan::DeviceClass {
                    name: "custom".into(),
                    macs_per_s: e,
                    memory_bytes: memory,
                    rate_bps: rate,
                },
                addr,
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Envelope::decode(&bytes);
    }

    #[test]
    fn frames_round_trip_and_truncations_are_refused(e in envelope(), cut in any::<prop::sample::Index>()) {
        let bytes = e.encode();
        prop_assert_eq!(Envelope::decode(&bytes).expect("valid"), e);
        let at = cut.index(bytes.len());
        prop_assert!(Envelope::decode(&bytes[..at]).is_err(), "prefix of {} bytes accepted", at);
        let mut longer = bytes.clone();
        longer.push(7);
        prop_assert!(Envelope::decode(&longer).is_err(), "a trailing byte was accepted");
    }

    #[test]
    fn flipped_bits_of_valid_frames_never_panic(e in envelope(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = e.encode();
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let _ = Envelope::decode(&bytes);
    }
}
