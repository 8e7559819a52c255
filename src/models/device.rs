//! Where models run and at which precision: `--device cpu|cuda[:N]` and
//! `--precision auto|f32|bf16|f16`.
//!
//! A CUDA device is opened once per process and ordinal, and shared by every stage that asks
//! for it. A build without the `cuda` feature refuses `cuda` with a hint, before any work.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};

use candle_core::{DType, Device};
use serde::Serialize;

use crate::error::{Error, Result};

/// A device named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum DeviceSpec {
    /// The CPU (candle's CPU backend, multi-threaded).
    #[default]
    Cpu,
    /// The NVIDIA GPU with this ordinal (`cuda` is `cuda:0`).
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        if t == "cpu" {
            return Ok(DeviceSpec::Cpu);
        }
        if t == "cuda" || t == "gpu" {
            return Ok(DeviceSpec::Cuda(0));
        }
        if let Some(n) = t.strip_prefix("cuda:") {
            return n.parse().map(DeviceSpec::Cuda).map_err(|_| {
                Error::user(format!("device `{s}`: `{n}` is not a GPU number"))
                    .with_hint("write `cuda:0`, `cuda:1`, ...")
            });
        }
        Err(Error::user(format!("unknown device `{s}`")).with_hint("use `cpu`, `cuda` or `cuda:N`"))
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Whether this binary was built with the `cuda` feature.
pub const CUDA_BUILD: bool = cfg!(feature = "cuda");

impl DeviceSpec {
    /// `cpu` or `cuda`, without the ordinal: what decides the numerics of the output.
    pub fn kind(&self) -> &'static str {
        match self {
            DeviceSpec::Cpu => "cpu",
            DeviceSpec::Cuda(_) => "cuda",
        }
    }

    /// Checks that the device can be used, without opening it: a CPU build refuses CUDA.
    pub fn check_build(&self) -> Result<()> {
        match self {
            DeviceSpec::Cpu => Ok(()),
            DeviceSpec::Cuda(_) if CUDA_BUILD => Ok(()),
            DeviceSpec::Cuda(_) => Err(Error::user(format!(
                "device `{self}` asked for, but this build of retort has no CUDA support"
            ))
            .with_hint(
                "use `--device cpu`, or build the CUDA binary with `make build-cuda` (docs/GPU.md)",
            )),
        }
    }

    /// Opens the device (once per process and ordinal; later calls share it).
    pub fn open(&self) -> Result<Device> {
        self.check_build()?;
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => open_cuda(*n),
        }
    }
}

fn open_cuda(ordinal: usize) -> Result<Device> {
    static OPEN: OnceLock<Mutex<HashMap<usize, Device>>> = OnceLock::new();
    let mut open = OPEN
        .get_or_init(Default::default)
        .lock()
        .expect("device table lock poisoned");
    if let Some(d) = open.get(&ordinal) {
        return Ok(d.clone());
    }
    let device = Device::new_cuda(ordinal).map_err(|e| {
        // The driver's reason, without the backtrace candle may attach.
        let text = e.to_string();
        let reason = text.lines().next().unwrap_or_default();
        let what = if reason.contains("CUDA_ERROR_NO_DEVICE") {
            "no CUDA-capable GPU is visible".to_string()
        } else if reason.contains("CUDA_ERROR_INVALID_DEVICE") {
            format!("there is no GPU number {ordinal}")
        } else {
            reason.to_string()
        };
        Error::user(format!("cannot open CUDA device {ordinal}: {what}")).with_hint(
            "check that `nvidia-smi` lists the GPU and that CUDA_VISIBLE_DEVICES allows it; \
             or use `--device cpu`",
        )
    })?;
    open.insert(ordinal, device.clone());
    Ok(device)
}

/// The floating-point type of inference (training always keeps f32 weights).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 on the CPU (the fastest there), bf16 on a GPU.
    #[default]
    Auto,
    /// 32-bit floats everywhere.
    F32,
    /// bfloat16 weights and activations (layer norms and softmax accumulate in f32).
    Bf16,
    /// IEEE half precision.
    F16,
}

impl FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Precision::Auto),
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            "f16" | "fp16" | "float16" | "half" => Ok(Precision::F16),
            _ => Err(Error::user(format!("unknown precision `{s}`"))
                .with_hint("use `auto`, `f32`, `bf16` or `f16`")),
        }
    }
}

impl Precision {
    /// The inference dtype on `device`.
    pub fn dtype_on(&self, device: &Device) -> DType {
        match self {
            Precision::Auto if device.is_cpu() => DType::F32,
            Precision::Auto => DType::BF16,
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
            Precision::F16 => DType::F16,
        }
    }

    /// The dtype's name as written in manifests (`f32`, `bf16`, `f16`) for a device kind.
    pub fn resolved_name(&self, device: DeviceSpec) -> &'static str {
        match (self, device) {
            (Precision::Auto, DeviceSpec::Cpu) | (Precision::F32, _) => "f32",
            (Precision::Auto, DeviceSpec::Cuda(_)) | (Precision::Bf16, _) => "bf16",
            (Precision::F16, _) => "f16",
        }
    }
}

/// Where models run, as asked on the command line: device and inference precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Placement {
    /// The device.
    pub device: DeviceSpec,
    /// The inference precision.
    pub precision: Precision,
}

impl Placement {
    /// Opens the device and resolves the precision on it.
    pub fn open(&self) -> Result<Compute> {
        Compute::open(self.device, self.precision)
    }

    /// `cpu-f32`, `cuda-bf16`, ...: what decides the numerics of model outputs.
    pub fn numerics(&self) -> String {
        format!(
            "{}-{}",
            self.device.kind(),
            self.precision.resolved_name(self.device)
        )
    }
}

/// Where a stage's models run: the opened device and the inference dtype.
#[derive(Debug, Clone)]
pub struct Compute {
    /// The opened device.
    pub device: Device,
    /// The inference dtype on it.
    pub dtype: DType,
    /// The precision asked for: with `auto` a model that cannot run in `dtype` keeps f32;
    /// with an explicit one it is refused ([`Compute::check_runs_in`]).
    pub precision: Precision,
}

impl Compute {
    /// f32 on the CPU: what tests and CPU-only callers use.
    pub fn cpu() -> Self {
        Compute {
            device: Device::Cpu,
            dtype: DType::F32,
            precision: Precision::Auto,
        }
    }

    /// Opens `spec` and resolves `precision` on it.
    pub fn open(spec: DeviceSpec, precision: Precision) -> Result<Self> {
        let device = spec.open()?;
        let dtype = precision.dtype_on(&device);
        Ok(Compute {
            device,
            dtype,
            precision,
        })
    }

    /// Refuses an explicit `--precision` that `what` cannot honour because it runs in
    /// `runs_in` (`auto` lets it: auto means the best each model can do). `what` names it,
    /// e.g. "`train` (it trains in f32)".
    pub fn check_runs_in(&self, runs_in: DType, what: &str) -> Result<()> {
        if self.precision == Precision::Auto || runs_in == self.dtype {
            return Ok(());
        }
        Err(Error::user(format!(
            "--precision {} is not supported by {what}",
            dtype_name(self.dtype)
        ))
        .with_hint(format!(
            "use `--precision auto` or `--precision {}`",
            dtype_name(runs_in)
        )))
    }
}

/// `f32`, `bf16`, `f16`, ... as `--precision` spells them.
pub fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        other => other.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("CUDA".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert_eq!(DeviceSpec::Cuda(3).to_string(), "cuda:3");
        let e = "cuda:x".parse::<DeviceSpec>().unwrap_err().to_string();
        assert!(e.contains("`x` is not a GPU number"), "{e}");
        let e = "tpu".parse::<DeviceSpec>().unwrap_err().to_string();
        assert!(e.contains("unknown device `tpu`"), "{e}");
    }

    #[test]
    fn precision_resolves_per_device() {
        assert_eq!(Precision::Auto.dtype_on(&Device::Cpu), DType::F32);
        assert_eq!(Precision::Bf16.dtype_on(&Device::Cpu), DType::BF16);
        assert_eq!("fp16".parse::<Precision>().unwrap(), Precision::F16);
        assert_eq!(Precision::Auto.resolved_name(DeviceSpec::Cuda(0)), "bf16");
        assert_eq!(Precision::Auto.resolved_name(DeviceSpec::Cpu), "f32");
        assert!("int8".parse::<Precision>().is_err());
    }

    #[test]
    fn an_explicit_precision_a_model_cannot_run_in_is_refused() {
        let open = |p: Precision| Compute::open(DeviceSpec::Cpu, p).unwrap();
        let what = "`train` (it trains in f32)";
        let e = open(Precision::F16)
            .check_runs_in(DType::F32, what)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--precision f16 is not supported by `train` (it trains in f32)"
        );
        assert!(
            e.hint().unwrap().contains("--precision f32"),
            "{:?}",
            e.hint()
        );
        assert!(open(Precision::Bf16)
            .check_runs_in(DType::F32, what)
            .is_err());
        // `auto` lets a model keep f32; an explicit precision it runs in is fine.
        assert!(open(Precision::Auto)
            .check_runs_in(DType::F32, what)
            .is_ok());
        assert!(open(Precision::F32).check_runs_in(DType::F32, what).is_ok());
        assert!(open(Precision::Bf16)
            .check_runs_in(DType::BF16, what)
            .is_ok());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_cpu_build_refuses_cuda_with_a_hint() {
        let e = DeviceSpec::Cuda(1).open().unwrap_err();
        let text = format!("{e} {}", e.hint().unwrap_or_default());
        assert!(text.contains("no CUDA support"), "{text}");
        assert!(text.contains("make build-cuda"), "{text}");
        assert!(DeviceSpec::Cpu.open().unwrap().is_cpu());
    }
}
