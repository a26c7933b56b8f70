//! `uma-c-tools`: what a C policy needs besides a C compiler.
//!
//! ```text
//! uma-c-tools bindings <wit-dir> <world> <out-dir>   # policy.h, policy.c, policy_component_type.o
//! uma-c-tools component <core.wasm> <out.wasm>       # wrap with the preview1 reactor adapter
//! ```
//!
//! The same as `wit-bindgen c --world <world> <wit-dir>` and
//! `wasm-tools component new --adapt wasi_snapshot_preview1=<reactor adapter> <core.wasm>`,
//! built from the crates those CLIs use, pinned to the versions the host and the Rust SDK use.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uma-c-tools: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> anyhow::Result<()> {
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["bindings", wit, world, out] => bindings(Path::new(wit), world, Path::new(out)),
        ["component", core, out] => component(Path::new(core), Path::new(out)),
        _ => bail!(
            "usage:\n  uma-c-tools bindings <wit-dir> <world> <out-dir>\n  uma-c-tools component <core.wasm> <out.wasm>"
        ),
    }
}

fn bindings(wit: &Path, world: &str, out: &Path) -> anyhow::Result<()> {
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_path(wit)
        .with_context(|| format!("reading WIT from {}", wit.display()))?;
    let world = resolve.select_world(&[package], Some(world))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)?;
    std::fs::create_dir_all(out)?;
    for (name, contents) in files.iter() {
        let path = out.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}

fn component(core: &Path, out: &Path) -> anyhow::Result<()> {
    let module = std::fs::read(core).with_context(|| format!("reading {}", core.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)?
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .validate(true)
        .encode()?;
    std::fs::write(out, &component).with_context(|| format!("writing {}", out.display()))?;
    println!("{} ({} bytes)", out.display(), component.len());
    Ok(())
}
