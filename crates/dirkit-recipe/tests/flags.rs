//! The recipe's flags: the default method is LDS, `--vanilla` is plain L1, a method flag means
//! exactly that method, and a resumed run refuses every run flag but `--epochs`.

use clap::{CommandFactory, FromArgMatches, Parser};
use dirkit_core::Reweight;
use dirkit_recipe::LossSpec;
use dirkit_recipe::flags::RunFlags;

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    run: RunFlags,
    #[arg(long)]
    out: Option<String>,
}

fn parse(args: &[&str]) -> (Cli, clap::ArgMatches) {
    let matches = Cli::command()
        .try_get_matches_from(std::iter::once("age").chain(args.iter().copied()))
        .unwrap();
    (Cli::from_arg_matches(&matches).unwrap(), matches)
}

#[test]
fn no_method_flag_is_lds_and_vanilla_is_plain_l1() {
    let (cli, _) = parse(&[]);
    assert!(cli.run.default_method());
    let c = cli.run.config().unwrap();
    let r = c.reweight.expect("the default run re-weights");
    assert_eq!(r.reweight, Reweight::SqrtInverse);
    assert!(r.lds.is_some(), "the default run smooths with LDS");
    assert_eq!(c.loss, LossSpec::L1);

    let (cli, _) = parse(&["--vanilla"]);
    assert!(!cli.run.default_method());
    let c = cli.run.config().unwrap();
    assert!(c.reweight.is_none() && c.fds.is_none());
    assert_eq!(c.loss, LossSpec::L1);

    // A method flag means that method alone, as it always did.
    for (args, reweighted) in [
        (&["--fds"][..], false),
        (&["--loss", "bmc"][..], false),
        (&["--lds"][..], true),
        (&["--reweight", "inverse"][..], true),
    ] {
        let (cli, _) = parse(args);
        assert!(!cli.run.default_method(), "{args:?}");
        let c = cli.run.config().unwrap();
        assert_eq!(c.reweight.is_some(), reweighted, "{args:?}");
    }
    let e = Cli::command()
        .try_get_matches_from(["age", "--vanilla", "--lds"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--vanilla") && e.contains("--lds"), "{e}");
}

#[test]
fn resume_refuses_run_flags_but_epochs() {
    let (_, m) = parse(&["--out", "run", "--epochs", "3"]);
    assert!(RunFlags::resume_conflicts(&m).is_empty());
    let (_, m) = parse(&[
        "--out",
        "run",
        "--lds",
        "--train-images",
        "100",
        "--seed",
        "2",
    ]);
    let mut given = RunFlags::resume_conflicts(&m);
    given.sort();
    assert_eq!(given, ["--lds", "--seed", "--train-images"]);
}
