//! Seeded mutations of valid inputs: byte-level (flip, truncate, splice, repeat, header
//! words set to extremes) for binary formats and token-level (every number replaced by a
//! hostile one, keys and lines dropped or duplicated, strings stretched) for text formats.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Numbers that break naive parsers: non-finite, extreme, negative, zero, beyond 32 and 64
/// bits, subnormal.
pub const HOSTILE_NUMBERS: [&str; 16] = [
    "nan",
    "inf",
    "-inf",
    "-1",
    "0",
    "-0.0",
    "1e308",
    "-1e308",
    "1e-300",
    "4294967296",
    "18446744073709551616",
    "9223372036854775807",
    "1000000000",
    "1048576",
    "0.5",
    "3",
];

/// A deterministic generator of mutations.
pub struct Mutator {
    rng: ChaCha8Rng,
}

impl Mutator {
    /// Mutations drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        Mutator {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n.max(1))
    }

    /// A hostile number literal.
    pub fn number(&mut self) -> &'static str {
        HOSTILE_NUMBERS[self.below(HOSTILE_NUMBERS.len())]
    }

    /// One byte-level mutation of `seed`, and what it was.
    pub fn bytes(&mut self, seed: &[u8]) -> (Vec<u8>, String) {
        let mut v = seed.to_vec();
        let n = v.len().max(1);
        match self.below(7) {
            0 => {
                let at = self.below(n);
                v.truncate(at);
                (v, format!("truncated at {at}"))
            }
            1 => {
                let k = 1 + self.below(8);
                for _ in 0..k {
                    let at = self.below(n);
                    if let Some(b) = v.get_mut(at) {
                        *b ^= 1 << self.below(8);
                    }
                }
                (v, format!("{k} bit flips"))
            }
            2 => {
                // Header region: the first 64 bytes hold most lengths and dimensions.
                let at = self.below(n.min(64));
                let word = [0xffu8, 0x7f, 0x00, 0x80][self.below(4)];
                for b in v.iter_mut().skip(at).take(4) {
                    *b = word;
                }
                (v, format!("header word at {at} set to {word:#x}"))
            }
            3 => {
                let at = self.below(n);
                let len = 1 + self.below(256);
                let junk: Vec<u8> = (0..len).map(|_| self.rng.random()).collect();
                v.splice(at.min(v.len())..at.min(v.len()), junk);
                (v, format!("{len} random bytes inserted at {at}"))
            }
            4 => {
                let at = self.below(n);
                let tail = v.split_off(at.min(v.len()));
                v.extend_from_slice(&tail);
                v.extend_from_slice(&tail);
                (v, format!("tail from {at} repeated"))
            }
            5 => {
                let len = self.below(512);
                (
                    (0..len).map(|_| self.rng.random()).collect(),
                    format!("{len} random bytes"),
                )
            }
            _ => {
                let at = self.below(n);
                let len = self.below(n - at.min(n - 1)).max(1);
                v.drain(at.min(v.len())..(at + len).min(v.len()));
                (v, format!("{len} bytes removed at {at}"))
            }
        }
    }

    /// One token-level mutation of text `seed`, and what it was.
    pub fn text(&mut self, seed: &str) -> (String, String) {
        let numbers = number_spans(seed);
        let lines: Vec<&str> = seed.lines().collect();
        match self.below(6) {
            0..=2 if !numbers.is_empty() => {
                // The workhorse: one or more numbers replaced by hostile ones.
                let k = 1 + self.below(3);
                let mut s = seed.to_string();
                let mut picked: Vec<usize> = (0..k).map(|_| self.below(numbers.len())).collect();
                picked.sort_unstable();
                picked.dedup();
                let mut what = Vec::new();
                for &i in picked.iter().rev() {
                    let (a, b) = numbers[i];
                    let new = self.number();
                    what.push(format!("{} -> {new}", &seed[a..b]));
                    s.replace_range(a..b, new);
                }
                (s, what.join(", "))
            }
            3 if !lines.is_empty() => {
                let i = self.below(lines.len());
                let mut l = lines.clone();
                l.remove(i);
                (l.join("\n"), format!("line {i} removed"))
            }
            4 if !lines.is_empty() => {
                let i = self.below(lines.len());
                let mut l = lines.clone();
                l.insert(i, lines[i]);
                (l.join("\n"), format!("line {i} repeated"))
            }
            _ => {
                let (b, what) = self.bytes(seed.as_bytes());
                (String::from_utf8_lossy(&b).into_owned(), what)
            }
        }
    }
}

/// Byte ranges of the number literals in `text` (digits with an optional sign, fraction and
/// exponent), skipping digits inside identifiers such as `conv2`.
pub fn number_spans(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts =
            b[i].is_ascii_digit() || (b[i] == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit));
        let inside_word = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if starts && !inside_word {
            let a = i;
            i += 1;
            while i < b.len() && (b[i].is_ascii_digit() || b"+-.eE".contains(&b[i])) {
                i += 1;
            }
            if i < b.len() && (b[i].is_ascii_alphabetic() || b[i] == b'_') {
                continue;
            }
            spans.push((a, i));
        } else {
            i += 1;
        }
    }
    spans
}
