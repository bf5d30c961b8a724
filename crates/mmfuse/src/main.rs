//! `mmfuse`: train, evaluate and serve multimodal (text + image) fusion models. This file only
//! parses and dispatches; each command is a file of its own in `commands/`.

mod commands;

use clap::{Parser, Subcommand};
use commands::*;

#[derive(Parser, Debug)]
#[command(name = "mmfuse", version, about = "Train, evaluate and serve multimodal (text + image) fusion models")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Demo(demo::Args),
    Synth(synth::Args),
    SynthAligned(synth_aligned::Args),
    PrepareMosi(prepare_mosi::Args),
    Encode(encode::Args),
    ClipEmbed(clip_embed::Args),
    Evaluate(evaluate::Args),
    PrepareMmsd(prepare_mmsd::Args),
    PrepareMvsa(prepare_mvsa::Args),
    Train(train::Args),
    Sweep(sweep::Args),
    Predict(predict::Args),
    Serve(serve::Args),
}

fn main() {
    let cli = Cli::parse();
    let level = if cli.global.quiet { tracing::Level::WARN } else { tracing::Level::INFO };
    tracing_subscriber::fmt().with_max_level(level).with_target(false).with_writer(std::io::stderr).init();
    if let Err(e) = dispatch(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    // an unusable --device is an error before any work
    if let Some(d) = &g.device {
        d.device().map_err(anyhow::Error::msg)?;
    }
    match cli.command {
        Command::Demo(a) => demo::run(a, g),
        Command::Synth(a) => synth::run(a, g),
        Command::SynthAligned(a) => synth_aligned::run(a, g),
        Command::PrepareMosi(a) => prepare_mosi::run(a, g),
        Command::Encode(a) => encode::run(a, g),
        Command::ClipEmbed(a) => clip_embed::run(a, g),
        Command::Evaluate(a) => evaluate::run(a, g),
        Command::PrepareMmsd(a) => prepare_mmsd::run(a, g),
        Command::PrepareMvsa(a) => prepare_mvsa::run(a, g),
        Command::Train(a) => train::run(a, g),
        Command::Sweep(a) => sweep::run(a, g),
        Command::Predict(a) => predict::run(a, g),
        Command::Serve(a) => serve::run(a, g),
    }
}
