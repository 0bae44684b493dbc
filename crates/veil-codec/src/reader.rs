//! [`Reader`]: the decoding side of the contract in the crate docs; defensive against
//! hostile input (counts checked against the bytes left before allocating, no panics).

use crate::WireError;

/// Reads fields written by [`crate::Writer`], failing on truncation, impossible counts and
/// (with [`Reader::finish`]) trailing bytes.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `buf`, naming it `what` in errors.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    /// An error about the thing being read, for checks the format itself makes.
    pub fn error(&self, message: impl Into<String>) -> WireError {
        WireError {
            what: self.what,
            message: message.into(),
        }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(self.error(format!(
                "truncated at byte {} (needed {n} more, {} left)",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// A `u8`.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(u8::from_le_bytes(self.array()?))
    }

    /// A `u32`.
    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A `u64`.
    pub fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A `u128`.
    pub fn u128(&mut self) -> Result<u128, WireError> {
        Ok(u128::from_le_bytes(self.array()?))
    }

    /// An `f32` (any bits, NaN included: callers that need finite values check).
    pub fn f32(&mut self) -> Result<f32, WireError> {
        Ok(f32::from_le_bytes(self.array()?))
    }

    /// An `f64` (any bits, NaN included: callers that need finite values check).
    pub fn f64(&mut self) -> Result<f64, WireError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// A `u32` index or small number as `usize`.
    pub fn index(&mut self) -> Result<usize, WireError> {
        usize::try_from(self.u32()?).map_err(|_| self.error("index does not fit this machine"))
    }

    /// A count of items, each taking at least `min_item_bytes` bytes (at least 1): refused
    /// when the bytes left cannot hold that many, so a caller may allocate `count` items.
    pub fn count(&mut self, min_item_bytes: usize) -> Result<usize, WireError> {
        let n = self.index()?;
        if n > self.remaining() / min_item_bytes.max(1) {
            return Err(self.error(format!(
                "{n} items cannot fit in the {} bytes left",
                self.remaining()
            )));
        }
        Ok(n)
    }

    /// A counted `u64` sequence.
    pub fn words(&mut self) -> Result<Vec<u64>, WireError> {
        let n = self.count(8)?;
        self.words_uncounted(n)
    }

    /// `n` `u64`s with no count before them (the format knows `n`); checked against the bytes
    /// left before allocating.
    pub fn words_uncounted(&mut self, n: usize) -> Result<Vec<u64>, WireError> {
        let bytes = n
            .checked_mul(8)
            .ok_or_else(|| self.error(format!("{n} words cannot fit")))?;
        Ok(self
            .take(bytes)?
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                u64::from_le_bytes(a)
            })
            .collect())
    }

    /// `n` values of `width` bytes each (little-endian, `width` in 1..=8), as written by
    /// `Writer::packed_words`. The byte count is checked before anything is allocated.
    pub fn packed_words(&mut self, n: usize, width: usize) -> Result<Vec<u64>, WireError> {
        if !(1..=8).contains(&width) {
            return Err(self.error(format!("packed width of {width} bytes")));
        }
        let bytes = n
            .checked_mul(width)
            .ok_or_else(|| self.error(format!("{n} values cannot fit")))?;
        Ok(self
            .take(bytes)?
            .chunks_exact(width)
            .map(|c| {
                let mut a = [0u8; 8];
                a[..width].copy_from_slice(c);
                u64::from_le_bytes(a)
            })
            .collect())
    }

    /// A counted `f32` sequence.
    pub fn f32s(&mut self) -> Result<Vec<f32>, WireError> {
        let n = self.count(4)?;
        Ok(self
            .take(n * 4)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// Counted bytes, borrowed.
    pub fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.count(1)?;
        self.take(n)
    }

    /// A counted UTF-8 string.
    pub fn string(&mut self) -> Result<String, WireError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| self.error("string is not UTF-8"))
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.error(format!("{n} trailing bytes"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Writer;

    #[test]
    fn errors_name_the_thing_and_the_offset() {
        let mut r = Reader::new(&[1, 2, 3], "test frame");
        assert_eq!(r.u8().ok(), Some(1));
        let e = r.u32().expect_err("short");
        assert_eq!(e.what, "test frame");
        assert!(e.to_string().contains("truncated at byte 1"), "{e}");
    }

    #[test]
    fn counts_the_bytes_cannot_hold_are_refused_before_allocating() {
        let mut w = Writer::new();
        w.u32(u32::MAX);
        w.raw(&[0; 12]);
        let bytes = w.into_bytes();
        assert!(Reader::new(&bytes, "x").words().is_err());
        assert!(Reader::new(&bytes, "x").f32s().is_err());
        assert!(Reader::new(&bytes, "x").bytes().is_err());
        // Three 4-byte items fit in 12 bytes; four do not.
        for (n, fits) in [(3u32, true), (4, false)] {
            let mut w = Writer::new();
            w.u32(n);
            w.raw(&[0; 12]);
            let frame = w.into_bytes();
            assert_eq!(Reader::new(&frame, "x").count(4).is_ok(), fits);
        }
    }

    #[test]
    fn an_oversized_count_is_written_so_that_it_is_refused() {
        let mut w = Writer::new();
        w.count(usize::MAX);
        let bytes = w.into_bytes();
        assert!(Reader::new(&bytes, "x").count(1).is_err());
    }

    #[test]
    fn packed_words_round_trip_and_refuse_short_or_huge_input() {
        let values = [0u64, 1, (1 << 40) - 1, 0x12_3456_789a];
        let mut w = Writer::new();
        w.packed_words(&values, 5);
        let bytes = w.into_bytes();
        assert_eq!(bytes.len(), 20);
        let mut r = Reader::new(&bytes, "x");
        assert_eq!(r.packed_words(4, 5).expect("fits"), values);
        assert!(r.finish().is_ok());
        assert!(Reader::new(&bytes, "x").packed_words(5, 5).is_err());
        assert!(
            Reader::new(&bytes, "x")
                .packed_words(usize::MAX, 5)
                .is_err()
        );
        assert!(Reader::new(&bytes, "x").packed_words(1, 9).is_err());
        // Full-width packing is the plain little-endian encoding.
        let mut w = Writer::new();
        w.packed_words(&[u64::MAX, 7], 8);
        let mut plain = Writer::new();
        plain.u64(u64::MAX);
        plain.u64(7);
        assert_eq!(w.into_bytes(), plain.into_bytes());
    }
}
