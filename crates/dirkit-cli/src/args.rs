//! Command-line definitions (clap derive) shared by the subcommands.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// dirkit: label-density tools for deep imbalanced regression.
#[derive(Debug, Parser)]
#[command(name = "dirkit", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Per-bin label counts, LDS effective density and re-weighting weights of a training set.
    Weights(WeightsArgs),
    /// Per-shot regression report (All / Many / Medium / Few) of a predictions file.
    Eval(EvalArgs),
    /// Write the age,path,split index of a folder of id_name_age_gender.jpg face images, with
    /// per-age balanced val/test sets (the AgeDB-DIR / IMDB-WIKI-DIR recipe).
    Split(SplitArgs),
}

/// Output format of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text table with a summary (for people).
    Table,
    /// Comma-separated values with a header (for programs).
    Csv,
    /// One JSON document.
    Json,
    /// A GitHub-flavoured Markdown table.
    Markdown,
}

/// `--reweight` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReweightArg {
    /// Every weight is 1.
    None,
    /// Inverse of the clipped count (see --inverse-clip).
    Inverse,
    /// Inverse square root of the count (the LDS paper's sqrt_inv).
    SqrtInverse,
    /// Inverse effective number of samples (1-β^n)/(1-β) (see --beta).
    EffectiveNumber,
}

/// `--lds` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LdsArg {
    /// The reference gaussian window (tails folded back into the window).
    Gaussian,
    /// exp(-x²/2σ²) without folding.
    GaussianExact,
    /// (h+1-|x|)/(h+1).
    #[value(alias = "triang")]
    Triangular,
    /// exp(-|x|/σ).
    Laplace,
    /// ((h+1)²-x²)/(h+1)².
    Epanechnikov,
    /// No smoothing: the effective density is the transformed count.
    None,
}

/// `--out-of-range` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutOfRangeArg {
    /// Put labels outside the range in the nearest edge bin (the reference's behaviour).
    Clip,
    /// Stop with an error naming the first label outside the range.
    Error,
    /// Leave them out (their per-sample weight is empty).
    Drop,
}

/// `--compat` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compat {
    /// Reproduce the official LDS code's numbers (integer-truncated inverse density, f32 weights).
    Reference,
}

/// How labels are binned (shared by `weights` and `eval`).
#[derive(Debug, Args)]
pub struct BinArgs {
    /// Bin width in label units.
    #[arg(long, default_value_t = 1.0, value_name = "W")]
    pub bin_width: f64,
    /// Label range START:END, END exclusive (0:121 with width 1 gives 121 bins); default: from
    /// the smallest to the largest label.
    #[arg(long, value_name = "START:END", allow_hyphen_values = true)]
    pub range: Option<String>,
    /// What to do with labels outside --range.
    #[arg(long, value_enum, default_value_t = OutOfRangeArg::Clip)]
    pub out_of_range: OutOfRangeArg,
    /// A bin is many-shot with more than this many training samples.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub many: u64,
    /// A bin is few-shot with fewer than this many training samples.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub few: u64,
}

/// `dirkit weights`.
#[derive(Debug, Args)]
#[command(
    allow_negative_numbers = true,
    after_help = "Examples:\n  dirkit weights datasets/agedb-dir/train_age_counts.csv --count-column count\n  \
dirkit weights train.csv --column age --reweight inverse --lds triangular --per-sample w.csv\n  \
seq 1 100 | dirkit weights - --format csv"
)]
pub struct WeightsArgs {
    /// CSV/TSV file with a header, or one number per line; `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub input: String,
    /// Label column (header name or 0-based index); needed when the file has several columns.
    #[arg(long, value_name = "NAME|INDEX")]
    pub column: Option<String>,
    /// Read a histogram: this column holds the number of samples with the row's label.
    #[arg(long, value_name = "NAME|INDEX")]
    pub count_column: Option<String>,
    /// Binning and shot thresholds.
    #[command(flatten)]
    pub bins: BinArgs,
    /// Count transform the weights are inverse to.
    #[arg(long, value_enum, default_value_t = ReweightArg::SqrtInverse)]
    pub reweight: ReweightArg,
    /// Clip bounds MIN:MAX on counts for --reweight inverse.
    #[arg(long, default_value = "5:1000", value_name = "MIN:MAX")]
    pub inverse_clip: String,
    /// β in (0, 1) for --reweight effective-number.
    #[arg(long, value_name = "B")]
    pub beta: Option<f64>,
    /// LDS smoothing kernel, `none` turns smoothing off [default: gaussian, or none with
    /// --reweight none].
    #[arg(long, value_enum)]
    pub lds: Option<LdsArg>,
    /// LDS kernel size in bins (odd).
    #[arg(long, default_value_t = 5, value_name = "K")]
    pub ks: usize,
    /// LDS kernel σ in bins (gaussian, gaussian-exact, laplace).
    #[arg(long, default_value_t = 2.0, value_name = "S")]
    pub sigma: f64,
    /// Reproduce another implementation's arithmetic.
    #[arg(long, value_enum)]
    pub compat: Option<Compat>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Also write one weight per input row, in input order, to this CSV file.
    #[arg(long, value_name = "OUT")]
    pub per_sample: Option<String>,
    /// Also draw empirical vs effective density and the weights (.svg or .png).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<String>,
    /// Overwrite --per-sample / --plot files that already exist.
    #[arg(long)]
    pub force: bool,
}

/// `dirkit eval`.
#[derive(Debug, Args)]
#[command(
    allow_negative_numbers = true,
    after_help = "Example:\n  dirkit eval --pred test_predictions.csv --train train.csv --train-column age"
)]
pub struct EvalArgs {
    /// Predictions CSV with a header: one target and one prediction column per test sample.
    #[arg(long, value_name = "FILE")]
    pub pred: String,
    /// Training labels (as for `dirkit weights`): their histogram defines the shots.
    #[arg(long, value_name = "FILE")]
    pub train: String,
    /// Target column of --pred [default: target, label, y or y_true].
    #[arg(long, value_name = "NAME|INDEX")]
    pub target_column: Option<String>,
    /// Prediction column of --pred [default: prediction, pred or y_pred].
    #[arg(long, value_name = "NAME|INDEX")]
    pub pred_column: Option<String>,
    /// Label column of --train; needed when it has several columns.
    #[arg(long, value_name = "NAME|INDEX")]
    pub train_column: Option<String>,
    /// --train is a histogram: this column holds the count of each label.
    #[arg(long, value_name = "NAME|INDEX")]
    pub train_count_column: Option<String>,
    /// Binning and shot thresholds.
    #[command(flatten)]
    pub bins: BinArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// `--preset` values of `dirkit split`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    /// AgeDB-DIR: at most 30 val and 30 test images per age.
    Agedb,
    /// IMDB-WIKI-DIR: at most 150 val and 150 test images per age.
    ImdbWiki,
}

/// `dirkit split`.
#[derive(Debug, Args)]
#[command(
    after_help = "For each age the images are shuffled with --seed; min(n/3, cap) go to \
val, as many to test, the rest to train (Yang et al. 2021). The age is the second-to-last '_' \
field of a name and the gender the last, so names may contain '_'. Image files are never \
opened or modified.\n\nExamples:\n  dirkit split data/AgeDB --out data/agedb.csv\n  \
dirkit split faces/ --out faces.csv --preset imdb-wiki --seed 1 --skip-bad"
)]
pub struct SplitArgs {
    /// Folder of face images named id_name_age_gender.ext (.jpg, .jpeg or .png), e.g.
    /// 0_MariaCallas_35_f.jpg; sub-folders and other files are ignored.
    #[arg(value_name = "IMAGE_DIR")]
    pub image_dir: String,
    /// The CSV to write (columns age,path,split; paths relative to IMAGE_DIR).
    #[arg(long, value_name = "FILE.csv")]
    pub out: String,
    /// At most this many val and this many test images per age [default: from --preset].
    #[arg(long, value_name = "N", conflicts_with = "preset")]
    pub cap: Option<usize>,
    /// The cap of a published benchmark.
    #[arg(long, value_enum, default_value_t = PresetArg::Agedb)]
    pub preset: PresetArg,
    /// Seed of the per-age shuffles: the same seed gives the same split.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Overwrite --out if it exists.
    #[arg(long)]
    pub force: bool,
    /// Leave out images whose names do not parse (the summary counts them) instead of stopping
    /// with the list.
    #[arg(long)]
    pub skip_bad: bool,
}
