//! Property tests of the codec: every sequence of fields round-trips, every prefix of an
//! encoding fails cleanly, and arbitrary bytes never panic any reader method.

use proptest::prelude::*;
use veil_codec::{Reader, Writer};

#[derive(Clone, Debug, PartialEq)]
enum Field {
    U8(u8),
    U32(u32),
    U64(u64),
    U128(u128),
    F64(u64),
    Words(Vec<u64>),
    Floats(Vec<u32>),
    Text(String),
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        any::<u8>().prop_map(Field::U8),
        any::<u32>().prop_map(Field::U32),
        any::<u64>().prop_map(Field::U64),
        any::<u128>().prop_map(Field::U128),
        any::<u64>().prop_map(Field::F64),
        proptest::collection::vec(any::<u64>(), 0..20).prop_map(Field::Words),
        proptest::collection::vec(any::<u32>(), 0..20).prop_map(Field::Floats),
        ".{0,12}".prop_map(Field::Text),
    ]
}

fn write(fields: &[Field]) -> Vec<u8> {
    let mut w = Writer::new();
    for f in fields {
        match f {
            Field::U8(v) => w.u8(*v),
            Field::U32(v) => w.u32(*v),
            Field::U64(v) => w.u64(*v),
            Field::U128(v) => w.u128(*v),
            Field::F64(bits) => w.f64(f64::from_bits(*bits)),
            Field::Words(v) => w.words(v),
            Field::Floats(bits) => {
                let v: Vec<f32> = bits.iter().map(|b| f32::from_bits(*b)).collect();
                w.f32s(&v);
            }
            Field::Text(s) => w.str(s),
        }
    }
    w.into_bytes()
}

/// Reads `fields`' shapes back from `bytes` (values compared bit for bit).
fn read(bytes: &[u8], fields: &[Field]) -> Result<Vec<Field>, veil_codec::WireError> {
    let mut r = Reader::new(bytes, "fields");
    let mut out = Vec::new();
    for f in fields {
        out.push(match f {
            Field::U8(_) => Field::U8(r.u8()?),
            Field::U32(_) => Field::U32(r.u32()?),
            Field::U64(_) => Field::U64(r.u64()?),
            Field::U128(_) => Field::U128(r.u128()?),
            Field::F64(_) => Field::F64(r.f64()?.to_bits()),
            Field::Words(_) => Field::Words(r.words()?),
            Field::Floats(_) => Field::Floats(r.f32s()?.iter().map(|x| x.to_bits()).collect()),
            Field::Text(_) => Field::Text(r.string()?),
        });
    }
    r.finish()?;
    Ok(out)
}

proptest! {
    #[test]
    fn fields_round_trip_and_every_prefix_fails(fields in proptest::collection::vec(field(), 1..12)) {
        let bytes = write(&fields);
        prop_assert_eq!(read(&bytes, &fields).expect("round trip"), fields.clone());
        for cut in 0..bytes.len() {
            prop_assert!(read(&bytes[..cut], &fields).is_err());
        }
        let mut long = bytes.clone();
        long.push(0);
        prop_assert!(read(&long, &fields).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), ops in proptest::collection::vec(0u8..10, 1..16)) {
        let mut r = Reader::new(&bytes, "noise");
        for op in ops {
            let _ = match op {
                0 => r.u8().map(drop),
                1 => r.u32().map(drop),
                2 => r.u64().map(drop),
                3 => r.u128().map(drop),
                4 => r.f64().map(drop),
                5 => r.words().map(drop),
                6 => r.f32s().map(drop),
                7 => r.string().map(drop),
                8 => r.count(3).map(drop),
                _ => r.bytes().map(drop),
            };
        }
        prop_assert!(r.position() <= bytes.len());
    }
}
