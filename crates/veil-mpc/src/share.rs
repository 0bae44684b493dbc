//! Additive secret shares in `Z_2^64`: `x = x_0 + x_1 mod 2^64`, each share alone uniformly
//! random.
//!
//! A [`Shares`] is one party's share vector of a secret tensor. Nothing here turns a share into
//! a plaintext by accident: the only way back is [`reveal`], which takes *both* parties'
//! shares and is used where a result is meant to be learnt (the healthcare center receiving
//! the logits, tests). Values the protocol opens on purpose are masked first and exchanged by
//! the online engine, whose functions say so in their names (`open_`).
//!
//! Key items: [`Party`], [`Shares`], [`share`], [`reveal`].

use rand::Rng;

/// One of the two computing servers (E1 is party 0, E2 party 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Party {
    /// E1.
    Zero,
    /// E2.
    One,
}

impl Party {
    /// 0 or 1.
    pub fn index(self) -> usize {
        match self {
            Party::Zero => 0,
            Party::One => 1,
        }
    }

    /// The party with index `i` (0 or anything else for 1).
    pub fn from_index(i: usize) -> Self {
        if i == 0 { Party::Zero } else { Party::One }
    }

    /// The other server.
    pub fn peer(self) -> Self {
        match self {
            Party::Zero => Party::One,
            Party::One => Party::Zero,
        }
    }

    /// Public constants are added by party 0 only: 1 for party 0, 0 for party 1.
    pub fn constant_weight(self) -> u64 {
        u64::from(self == Party::Zero)
    }
}

/// One party's share vector of a secret tensor (row-major, shape kept by the caller). Its
/// `Debug` prints only the length: a log line never holds share values.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Shares(pub Vec<u64>);

impl std::fmt::Debug for Shares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Shares(<{} words, redacted>)", self.0.len())
    }
}

impl Shares {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Splits `secret` into two share vectors; the first is uniform, the second the difference.
pub fn share(secret: &[u64], rng: &mut impl Rng) -> (Shares, Shares) {
    let s0: Vec<u64> = secret.iter().map(|_| rng.random()).collect();
    let s1 = secret
        .iter()
        .zip(&s0)
        .map(|(x, a)| x.wrapping_sub(*a))
        .collect();
    (Shares(s0), Shares(s1))
}

/// Reconstructs a secret from both parties' shares. Used only where the result is meant to be
/// learnt: by the result receiver, or in tests.
pub fn reveal(s0: &Shares, s1: &Shares) -> Vec<u64> {
    s0.0.iter()
        .zip(&s1.0)
        .map(|(a, b)| a.wrapping_add(*b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    #[test]
    fn debug_output_never_shows_share_values() {
        let text = format!("{:?}", Shares(vec![123_456_789, 987_654_321]));
        assert!(
            !text.contains("123456789") && !text.contains("987654321"),
            "{text}"
        );
        assert!(text.contains("2 words"), "{text}");
    }

    proptest! {
        #[test]
        fn share_then_reveal_is_the_identity(secret in proptest::collection::vec(any::<u64>(), 0..64), seed in any::<u64>()) {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let (a, b) = share(&secret, &mut rng);
            prop_assert_eq!(reveal(&a, &b), secret);
        }
    }

    #[test]
    fn party_helpers() {
        assert_eq!(Party::Zero.peer(), Party::One);
        assert_eq!(Party::from_index(1).index(), 1);
        assert_eq!(
            Party::Zero.constant_weight() + Party::One.constant_weight(),
            1
        );
    }
}
