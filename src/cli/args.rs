//! Flags and value parsers shared by several commands.

use clap::Args;

use retort::error::{Error, Result};
use retort::models::device::{DeviceSpec, Placement, Precision};

/// Where models run.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Device for models: `cpu`, `cuda` or `cuda:N` (needs a build with the `cuda` feature:
    /// `make build-cuda`).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    device: DeviceSpec,
    /// Inference precision: `auto` (f32 on the CPU, bf16 on a GPU), `f32`, `bf16` or `f16`.
    /// Training keeps f32 weights.
    #[arg(long, default_value = "auto", value_parser = parse_precision)]
    precision: Precision,
}

impl ModelArgs {
    /// Checks the build can use the device (a CPU build refuses CUDA) and opens it, so a
    /// missing GPU is reported before any work starts.
    pub fn placement(&self) -> Result<Placement> {
        let p = Placement {
            device: self.device,
            precision: self.precision,
        };
        p.open()?;
        Ok(p)
    }
}

/// A parse error as one line for clap: the message, then the hint.
fn one_line(e: Error) -> String {
    match e.hint() {
        Some(h) => format!("{e}; {h}"),
        None => e.to_string(),
    }
}

fn parse_device(s: &str) -> std::result::Result<DeviceSpec, String> {
    s.parse::<DeviceSpec>().map_err(one_line)
}

fn parse_precision(s: &str) -> std::result::Result<Precision, String> {
    s.parse::<Precision>().map_err(one_line)
}

/// Parses `NAME=VALUE` (for `--set` and `--var`); the name is trimmed, the value kept as is.
pub fn parse_key_value(s: &str) -> std::result::Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    if k.is_empty() {
        return Err(format!("`{s}` has an empty name"));
    }
    Ok((k.trim().to_string(), v.to_string()))
}
