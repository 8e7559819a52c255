//! Seeded parameter initialisation.
//!
//! candle's CPU RNG cannot be seeded, so models are built on a [`VarMap`] with a constant
//! initialiser ([`const_vb`]) and then [`reinit`] overwrites every variable from a
//! [`ChaCha8Rng`] seeded by `sha256(seed, variable name)`. The value of a variable therefore
//! depends only on the seed, its name and its shape, never on creation order.
//!
//! Rules, by variable name (first match wins):
//! 1. `*LayerNorm.weight`, `*LayerNorm.gamma`, `*norm.weight`: ones.
//! 2. `*LayerNorm.bias`, `*LayerNorm.beta`, `*.bias`: zeros.
//! 3. `cnn.embedding.weight`: uniform(-0.25, 0.25) (Kim 2014's range for word vectors).
//! 4. other `cnn.*.weight` (conv1d and linear of the CNN): Kaiming-uniform as PyTorch's default,
//!    uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) with `fan_in` = product of all dims but the first.
//! 5. every other `*.weight` (BERT embeddings and linears, `classifier.weight`): normal(0, 0.02),
//!    Hugging Face BERT's `initializer_range`.
//! 6. anything else: normal(0, 0.02).

use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::error::Result;

/// How one variable is initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InitRule {
    /// Every entry equal to this value.
    Const(f32),
    /// Normal distribution with this mean and standard deviation.
    Normal {
        /// Mean.
        mean: f32,
        /// Standard deviation.
        std: f32,
    },
    /// Uniform distribution on `[-bound, bound]`.
    Uniform {
        /// Half-width of the interval.
        bound: f32,
    },
}

/// The rule [`reinit`] applies to the variable `name` with shape `dims` (see module docs).
pub fn rule_for(name: &str, dims: &[usize]) -> InitRule {
    let is_norm = name.contains("LayerNorm") || name.ends_with("norm.weight");
    if is_norm && (name.ends_with(".weight") || name.ends_with(".gamma")) {
        return InitRule::Const(1.0);
    }
    if name.ends_with(".bias") || name.ends_with(".beta") {
        return InitRule::Const(0.0);
    }
    if name == "cnn.embedding.weight" {
        return InitRule::Uniform { bound: 0.25 };
    }
    if name.starts_with("cnn.") && name.ends_with(".weight") {
        let fan_in: usize = dims.iter().skip(1).product::<usize>().max(1);
        return InitRule::Uniform {
            bound: 1.0 / (fan_in as f32).sqrt(),
        };
    }
    InitRule::Normal {
        mean: 0.0,
        std: 0.02,
    }
}

/// The generator used for variable `name` under `seed`: ChaCha8 seeded with
/// `sha256(seed as little-endian u64 bytes || name bytes)`.
pub fn rng_for(seed: u64, name: &str) -> ChaCha8Rng {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(name.as_bytes());
    let digest: [u8; 32] = h.finalize().into();
    ChaCha8Rng::from_seed(digest)
}

/// Draws `n` values following `rule` from `rng` (Box-Muller for the normal distribution).
pub fn sample(rule: InitRule, n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    match rule {
        InitRule::Const(v) => vec![v; n],
        InitRule::Uniform { bound } => (0..n).map(|_| rng.random_range(-bound..=bound)).collect(),
        InitRule::Normal { mean, std } => {
            let mut out = Vec::with_capacity(n + 1);
            while out.len() < n {
                // u1 in (0, 1] so that ln(u1) is finite.
                let u1: f64 = 1.0 - rng.random::<f64>();
                let u2: f64 = rng.random::<f64>();
                let r = (-2.0 * u1.ln()).sqrt();
                let t = 2.0 * std::f64::consts::PI * u2;
                out.push(mean + std * (r * t.cos()) as f32);
                out.push(mean + std * (r * t.sin()) as f32);
            }
            out.truncate(n);
            out
        }
    }
}

/// A [`VarBuilder`] that creates f32 variables in `varmap` with a constant (zero) value,
/// to be overwritten by [`reinit`] or by loaded weights.
pub fn const_vb(varmap: &VarMap, device: &Device) -> VarBuilder<'static> {
    VarBuilder::from_varmap(varmap, DType::F32, device)
}

/// The constant initialiser models pass to `VarBuilder::get_with_hints`.
pub const ZERO_INIT: Init = Init::Const(0.0);

/// Overwrites every variable of `varmap` deterministically from `seed` (rules in module docs).
/// Variables are visited in sorted name order.
pub fn reinit(varmap: &VarMap, seed: u64) -> Result<()> {
    let data = varmap.data().lock().expect("varmap lock poisoned");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let n: usize = dims.iter().product();
        let rule = rule_for(name, &dims);
        let mut rng = rng_for(seed, name);
        let values = sample(rule, n, &mut rng);
        let t = Tensor::from_vec(values, dims.as_slice(), var.device())?.to_dtype(var.dtype())?;
        var.set(&t)?;
    }
    Ok(())
}

/// Sorted names of the variables of `varmap`.
pub fn var_names(varmap: &VarMap) -> Vec<String> {
    let data = varmap.data().lock().expect("varmap lock poisoned");
    let mut names: Vec<String> = data.keys().cloned().collect();
    names.sort();
    names
}

/// Test helper: `varmap` holds `count` variables and each received a non-zero gradient.
#[cfg(test)]
pub(crate) fn assert_every_var_has_gradient(
    varmap: &VarMap,
    grads: &candle_core::backprop::GradStore,
    count: usize,
) {
    let data = varmap.data().lock().unwrap();
    assert_eq!(data.len(), count);
    for (name, var) in data.iter() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no grad for {name}"));
        let s = g
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(s > 0.0, "zero gradient for {name}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(seed: u64) -> VarMap {
        let vm = VarMap::new();
        let vb = const_vb(&vm, &Device::Cpu);
        vb.get_with_hints((10, 4), "emb.weight", ZERO_INIT).unwrap();
        vb.get_with_hints(4, "emb.LayerNorm.weight", ZERO_INIT)
            .unwrap();
        vb.get_with_hints(4, "emb.LayerNorm.bias", ZERO_INIT)
            .unwrap();
        vb.get_with_hints((3, 4, 2), "cnn.convs.0.weight", ZERO_INIT)
            .unwrap();
        vb.get_with_hints(3, "cnn.convs.0.bias", ZERO_INIT).unwrap();
        reinit(&vm, seed).unwrap();
        vm
    }

    fn values(vm: &VarMap, name: &str) -> Vec<f32> {
        let d = vm.data().lock().unwrap();
        d[name]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn same_seed_same_values_other_seed_differs() {
        let a = build(7);
        let b = build(7);
        let c = build(8);
        for n in var_names(&a) {
            assert_eq!(values(&a, &n), values(&b, &n), "{n}");
        }
        assert_ne!(values(&a, "emb.weight"), values(&c, "emb.weight"));
        assert_ne!(
            values(&a, "cnn.convs.0.weight"),
            values(&c, "cnn.convs.0.weight")
        );
    }

    #[test]
    fn rules_by_name() {
        let a = build(1);
        assert!(values(&a, "emb.LayerNorm.weight").iter().all(|&x| x == 1.0));
        assert!(values(&a, "emb.LayerNorm.bias").iter().all(|&x| x == 0.0));
        assert!(values(&a, "cnn.convs.0.bias").iter().all(|&x| x == 0.0));
        let bound = 1.0 / 8f32.sqrt();
        assert!(values(&a, "cnn.convs.0.weight")
            .iter()
            .all(|&x| x.abs() <= bound));
        assert_eq!(
            rule_for(
                "bert.encoder.layer.0.attention.output.LayerNorm.gamma",
                &[4]
            ),
            InitRule::Const(1.0)
        );
        assert_eq!(rule_for("x.LayerNorm.beta", &[4]), InitRule::Const(0.0));
    }

    #[test]
    fn normal_has_right_moments() {
        let mut rng = rng_for(0, "x");
        let v = sample(
            InitRule::Normal {
                mean: 0.0,
                std: 0.02,
            },
            20001,
            &mut rng,
        );
        assert_eq!(v.len(), 20001);
        let m = v.iter().sum::<f32>() / v.len() as f32;
        let s = (v.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / v.len() as f32).sqrt();
        assert!(m.abs() < 1e-3, "mean {m}");
        assert!((s - 0.02).abs() < 1e-3, "std {s}");
        assert!(sample(InitRule::Const(1.0), 0, &mut rng).is_empty());
    }
}
