//! [`Writer`]: appends little-endian fields to a byte vector (the encoding side of the
//! contract in the crate docs).

/// Appends little-endian fields to a byte vector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Writer::default()
    }

    /// An empty writer with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(bytes),
        }
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// The bytes written so far, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// A `u8`.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// A `u32`.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A `u64`.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A `u128`.
    pub fn u128(&mut self, v: u128) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// An `f32` (its bits).
    pub fn f32(&mut self, v: f32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// An `f64` (its bits).
    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A count or index as `u32`. Values past `u32::MAX` (no frame of veil's can hold that
    /// many items) are written as `u32::MAX`, which a [`crate::Reader`] then refuses as a count
    /// that cannot fit, instead of wrapping silently to a wrong, valid-looking value.
    pub fn count(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }

    /// A counted `u64` sequence.
    pub fn words(&mut self, v: &[u64]) {
        self.count(v.len());
        self.buf.reserve(v.len() * 8);
        for w in v {
            self.u64(*w);
        }
    }

    /// `values` without a count, each as its low `width` bytes (little-endian, `width` in
    /// 1..=8): the packed encoding of values known to be below `2^(8 width)`. Higher bytes
    /// are dropped, so callers reduce values first.
    pub fn packed_words(&mut self, values: &[u64], width: usize) {
        let width = width.clamp(1, 8);
        self.buf.reserve(values.len() * width);
        for v in values {
            self.buf.extend_from_slice(&v.to_le_bytes()[..width]);
        }
    }

    /// A counted `f32` sequence.
    pub fn f32s(&mut self, v: &[f32]) {
        self.count(v.len());
        self.buf.reserve(v.len() * 4);
        for x in v {
            self.f32(*x);
        }
    }

    /// Counted bytes.
    pub fn bytes(&mut self, v: &[u8]) {
        self.count(v.len());
        self.buf.extend_from_slice(v);
    }

    /// A counted UTF-8 string.
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// Raw bytes, no count (a nested encoding whose length the format knows otherwise).
    pub fn raw(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
}
