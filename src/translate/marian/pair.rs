//! A round trip through a pivot language: a forward and a backward model.

use std::path::Path;

use candle_core::Device;

use super::{Generation, Marian};
use crate::error::Result;

/// A forward (language → pivot) and a backward (pivot → language) model.
pub struct MarianPair {
    /// Language → pivot.
    pub forward: Marian,
    /// Pivot → language.
    pub backward: Marian,
}

/// Seed of one direction of a round trip, from the copy's seed.
fn direction_seed(seed: u64, direction: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(direction.as_bytes(), seed)
}

impl MarianPair {
    /// Loads both folders onto `device`; errors name the direction.
    pub fn load(forward: &Path, backward: &Path, device: &Device) -> Result<Self> {
        Ok(MarianPair {
            forward: Marian::load(forward, device).map_err(|e| e.context("`forward_model`"))?,
            backward: Marian::load(backward, device).map_err(|e| e.context("`backward_model`"))?,
        })
    }

    /// Translates every text into the pivot and back. Text `i` is sampled with generators
    /// seeded from `seeds[i]` (one per direction). Each text gets its round trip or the reason
    /// it failed.
    pub fn round_trip(
        &self,
        texts: &[String],
        seeds: &[u64],
        gen: &Generation,
        batch_size: usize,
        pool: &rayon::ThreadPool,
    ) -> Vec<std::result::Result<String, String>> {
        let there_seeds: Vec<u64> = seeds
            .iter()
            .map(|&s| direction_seed(s, "forward"))
            .collect();
        let there = self
            .forward
            .translate(texts, &there_seeds, gen, batch_size, pool);
        let (mut pivot_texts, mut back_seeds, mut which) = (Vec::new(), Vec::new(), Vec::new());
        for (i, r) in there.iter().enumerate() {
            if let Ok(t) = r {
                pivot_texts.push(t.clone());
                back_seeds.push(direction_seed(seeds[i], "backward"));
                which.push(i);
            }
        }
        let back = self
            .backward
            .translate(&pivot_texts, &back_seeds, gen, batch_size, pool);
        let mut out: Vec<std::result::Result<String, String>> = there
            .into_iter()
            .map(|r| {
                r.and(Err(String::new()))
                    .map_err(|e| format!("forward: {e}"))
            })
            .collect();
        for (i, r) in which.into_iter().zip(back) {
            out[i] = r.map_err(|e| format!("backward: {e}"));
        }
        out
    }
}
