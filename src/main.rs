//! The `clickback` server binary: configuration from the environment, then run.

use clickback::config::Settings;
use clickback::startup::Application;

/// mimalloc instead of glibc malloc: allocation was ~20 % of clickback's CPU
/// under load (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    clickback::logging::init();
    let settings = Settings::from_env()?;
    let app = Application::build(settings).await?;
    log::info!("clickback listening on port {}", app.port());
    app.run_until_stopped().await?;
    Ok(())
}
