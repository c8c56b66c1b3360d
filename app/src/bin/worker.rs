fn main() {
    #[cfg(target_arch = "wasm32")]
    tessera_app::worker::start();
}
