//! Operating-system randomness for masking keys and nonces, fetched in
//! blocks rather than one system call per frame.

use wsproto_core::RandomSource;

const BLOCK: usize = 256;

/// A [`RandomSource`] drawing from the operating system's generator
/// (`getrandom`), a block of 256 bytes at a time.
pub struct OsRng {
    block: [u8; BLOCK],
    used: usize,
}

impl OsRng {
    /// A source with an empty block; the first use fills it.
    #[must_use]
    pub fn new() -> Self {
        Self {
            block: [0; BLOCK],
            used: BLOCK,
        }
    }
}

impl Default for OsRng {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for OsRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OsRng")
    }
}

impl RandomSource for OsRng {
    /// # Panics
    ///
    /// If the operating system has no randomness to give: masking keys must
    /// be unpredictable (RFC 6455 §5.3), so there is no safe fallback.
    fn fill(&mut self, dest: &mut [u8]) {
        let mut dest = dest;
        while !dest.is_empty() {
            if self.used == BLOCK {
                if let Err(err) = getrandom::fill(&mut self.block) {
                    panic!("the operating system's random generator failed: {err}");
                }
                self.used = 0;
            }
            let n = dest.len().min(BLOCK - self.used);
            let (now, rest) = dest.split_at_mut(n);
            now.copy_from_slice(&self.block[self.used..self.used + n]);
            // Bytes handed out are not kept.
            self.block[self.used..self.used + n].fill(0);
            self.used += n;
            dest = rest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_across_blocks_without_repeating() {
        let mut rng = OsRng::new();
        let mut a = [0u8; 300];
        let mut b = [0u8; 300];
        rng.fill(&mut a);
        rng.fill(&mut b);
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 300]);
    }
}
