//! `prifft devices`: the GPU adapters wgpu sees.

use clap::Args;

use prifft::Result;

/// Arguments of `prifft devices`.
#[derive(Args, Debug)]
pub struct DevicesArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[cfg(feature = "gpu")]
pub fn run(args: DevicesArgs) -> Result<()> {
    let json = args.json;
    let adapters = prifft::backend::gpu::list_adapters();
    if json {
        println!("{}", serde_json::to_string_pretty(&adapters).expect("serialisable"));
        return Ok(());
    }
    if adapters.is_empty() {
        println!("No GPU adapter found: prifft will run everything on the CPU.");
        println!(
            "(On Linux without a GPU, `apt-get install mesa-vulkan-drivers libvulkan1` gives the lavapipe software adapter.)"
        );
        return Ok(());
    }
    for (i, a) in adapters.iter().enumerate() {
        println!("[{i}] {} — {} {} ({})", a.name, a.backend, a.device_type, a.driver);
        println!(
            "    shader int64: {}; max storage binding {} MiB; max buffer {} MiB; workgroup storage {} KiB; {} invocations/workgroup; {} workgroups/dim",
            if a.shader_int64 { "yes" } else { "no" },
            a.max_storage_buffer_binding_size >> 20,
            a.max_buffer_size >> 20,
            a.max_compute_workgroup_storage_size >> 10,
            a.max_compute_invocations_per_workgroup,
            a.max_compute_workgroups_per_dimension
        );
    }
    Ok(())
}

#[cfg(not(feature = "gpu"))]
pub fn run(_args: DevicesArgs) -> Result<()> {
    println!(
        "This build has no GPU support (built without the `gpu` feature): everything runs on the CPU."
    );
    Ok(())
}
