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
    /// Relevance φ of a target column (utility-based regression): control points from the box
    /// plot or given, one φ per row, the rare share and the bumps.
    Relevance(RelevanceArgs),
    /// Rebalance a table by relevance: random over/under-sampling, Gaussian noise, SMOTER, SMOGN
    /// or WERCS; writes a CSV with the input's columns.
    Resample(ResampleArgs),
    /// Choose the DIR method and its strength for a table by relevance-stratified
    /// cross-validation, with the cost on the common values; the chosen configuration is then
    /// checked on a held-out test part.
    Select(SelectArgs),
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
    #[value(alias = "md")]
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
    /// Bin width in label units, or a rule that picks it from the training labels: `auto` (=
    /// `fd`, Freedman–Diaconis), `scott` or `sturges`; the choice is printed on stderr.
    #[arg(long, default_value = "1", value_name = "W|auto|fd|scott|sturges")]
    pub bin_width: String,
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
    /// Also report SERA (squared error-relevance area) per group and the utility-based
    /// precision / recall / F1, with φ from the training labels (see the relevance flags).
    #[arg(long)]
    pub sera: bool,
    /// Trapezoid step of SERA's threshold integral.
    #[arg(long, default_value_t = 0.001, value_name = "STEP", requires = "sera")]
    pub sera_step: f64,
    /// Relevance threshold of the utility-based precision / recall / F1 printed with --sera.
    #[arg(long, default_value_t = 0.8, value_name = "T", requires = "sera")]
    pub utility_threshold: f64,
    /// φ for --sera.
    #[command(flatten)]
    pub relevance: PhiArgs,
    /// Column of --pred holding each prediction's standard deviation (e.g. `sigma`, as the
    /// age-estimation example writes for UVOTE and VIR): adds the NLL, the coverage of the
    /// central 50% / 90% intervals and the sparsification error (AUSE).
    #[arg(long, value_name = "NAME|INDEX")]
    pub sigma_column: Option<String>,
    /// The distribution --sigma-column describes.
    #[arg(long, value_enum, default_value_t = DistArg::Gaussian, requires = "sigma_column")]
    pub dist: DistArg,
}

/// `--dist` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DistArg {
    /// Normal with standard deviation σ (VIR's predictions).
    Gaussian,
    /// Laplace with standard deviation σ, scale σ/√2 (UVOTE's predictions).
    Laplace,
}

/// `--extremes` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExtremesArg {
    /// Both tails are relevant.
    Both,
    /// Only high values are relevant.
    High,
    /// Only low values are relevant.
    Low,
}

/// `--box-plot` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BoxPlotArg {
    /// Tukey's hinges as R's boxplot.stats (UBL, IRon, imbreg): the methods' reference.
    Ubl,
    /// numpy midpoint quartiles, as the smogn Python package.
    Smogn,
    /// Hubert & Vandervieren's adjusted box plot (medcouple) for skewed targets.
    Adjusted,
}

/// How φ is built: automatic control points from the box plot, or given ones.
#[derive(Debug, Args)]
pub struct PhiArgs {
    /// Which tails are relevant (automatic control points).
    #[arg(long, value_enum, default_value_t = ExtremesArg::Both)]
    pub extremes: ExtremesArg,
    /// Box-plot fence multiplier of the inter-quartile range.
    #[arg(long, default_value_t = 1.5, value_name = "C")]
    pub coef: f64,
    /// Quartile convention of the box plot.
    #[arg(long, value_enum, default_value_t = BoxPlotArg::Ubl)]
    pub box_plot: BoxPlotArg,
    /// Control points VALUE:RELEVANCE[:SLOPE],… instead of the box plot (slope 0 when left out).
    #[arg(long, value_name = "V:R[:S],…", allow_hyphen_values = true)]
    pub control: Option<String>,
}

/// `dirkit relevance`.
#[derive(Debug, Args)]
#[command(
    allow_negative_numbers = true,
    after_help = "Examples:\n  dirkit relevance datasets/wine-quality/winequality-red.csv --column quality\n  \
dirkit relevance prices.csv --column price --extremes high --format csv > phi.csv\n  \
dirkit relevance y.csv --column y --control 0:1,10:0,40:1 --plot phi.svg"
)]
pub struct RelevanceArgs {
    /// CSV/TSV file with a header, or one number per line; `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub input: String,
    /// Target column (header name or 0-based index); needed when the file has several columns.
    #[arg(long, value_name = "NAME|INDEX")]
    pub column: Option<String>,
    /// How φ is built.
    #[command(flatten)]
    pub phi: PhiArgs,
    /// Output format: `csv` prints value,relevance for every input row, in input order.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Also draw the histogram with its rare bins and φ (.svg or .png).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<String>,
    /// Overwrite --plot if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `--method` values of `dirkit resample`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// Random over-sampling: copies of rare rows added.
    Ro,
    /// Random under-sampling: normal rows dropped.
    Ru,
    /// Gaussian noise: noisy copies of rare rows, normal rows under-sampled.
    Gn,
    /// SMOTER: interpolation between rare neighbours, normal rows under-sampled.
    Smoter,
    /// SMOGN: SMOTER for close neighbours, Gaussian noise otherwise.
    Smogn,
    /// WERCS: copies drawn by φ added, rows drawn by 1 − φ removed.
    Wercs,
}

/// `--distance` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DistanceArg {
    /// Euclidean over range-normalised numeric columns.
    Euclidean,
    /// HEOM: range-normalised numeric differences, 0/1 nominal mismatches.
    Heom,
}

/// `dirkit resample`.
#[derive(Debug, Args)]
#[command(
    allow_negative_numbers = true,
    after_help = "Original rows that are kept come first in input order, then copies and new \
rows bump by bump. The same --seed gives the same file.\n\nExamples:\n  dirkit resample \
datasets/wine-quality/winequality-red.csv --target quality --method smogn --output wine-smogn.csv\n  \
dirkit resample houses.csv --target price --method smoter --nominal district --strategy extreme \
--output balanced.csv"
)]
pub struct ResampleArgs {
    /// CSV/TSV file with a header row.
    #[arg(value_name = "FILE")]
    pub input: String,
    /// The numeric target column.
    #[arg(long, value_name = "NAME")]
    pub target: String,
    /// Resampling method.
    #[arg(long, value_enum)]
    pub method: MethodArg,
    /// Relevance threshold: rows with φ ≥ T are rare.
    #[arg(long, default_value_t = 0.5, value_name = "T")]
    pub threshold: f64,
    /// Bump sizes: balance, extreme, or factors P1,P2,… (per bump; per rare bump for ro, per
    /// normal bump for ru).
    #[arg(
        long,
        default_value = "balance",
        value_name = "balance|extreme|P1,P2,…"
    )]
    pub strategy: String,
    /// Nearest neighbours per rare row (smoter, smogn).
    #[arg(long, default_value_t = 5, value_name = "K")]
    pub k: usize,
    /// Noise scale for gn (default 0.1) and smogn (default 0.01).
    #[arg(long, value_name = "P")]
    pub pert: Option<f64>,
    /// Distance [default: euclidean for numeric tables, heom with nominal columns].
    #[arg(long, value_enum)]
    pub distance: Option<DistanceArg>,
    /// Columns holding categories even when they look numeric (comma-separated names).
    #[arg(long, value_name = "COL,…")]
    pub nominal: Option<String>,
    /// WERCS: copies added, as a fraction of the rows.
    #[arg(long, default_value_t = 0.5, value_name = "F")]
    pub over: f64,
    /// WERCS: rows drawn for removal, as a fraction of the rows.
    #[arg(long, default_value_t = 0.5, value_name = "F")]
    pub under: f64,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,
    /// How φ is built.
    #[command(flatten)]
    pub phi: PhiArgs,
    /// The CSV to write.
    #[arg(long, value_name = "OUT")]
    pub output: String,
    /// Overwrite OUT if it exists.
    #[arg(long)]
    pub force: bool,
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
    /// The CSV to write (columns age,path,split; paths relative to the CSV's own folder).
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
    /// When names do not parse, list every one (default: the first five and a count).
    #[arg(long)]
    pub list_bad: bool,
}

/// `--learner` values of `dirkit select`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LearnerArg {
    /// Weighted ridge regression: seconds; the weights and the resamplers.
    Ridge,
    /// A two-layer MLP with dirkit's heads: minutes; adds Balanced MSE, ConR, RnC, UVOTE, VIR.
    Mlp,
    /// Both learners.
    All,
}

/// `--objective` values of `dirkit select`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ObjectiveArg {
    /// Few-shot MAE (lower is better).
    FewMae,
    /// SERA, the squared error-relevance area (lower is better).
    Sera,
    /// Utility-based F1 at the relevance threshold (higher is better).
    F1,
    /// Balanced MAE, the mean per-bin MAE (lower is better).
    BalancedMae,
}

/// `dirkit select`.
#[derive(Debug, Args)]
#[command(
    allow_negative_numbers = true,
    after_help = "Every candidate is fitted on the training part of each fold only: φ, bins, \
weights, resampled rows and feature scaling never see the validation part. Folds are stratified \
on the target and on φ's rare bumps. Candidates: plain; LDS weights of strength α (0.25, 0.5, \
0.75, 1); DenseWeight α (0.5, 1, 1.5, 2); RO, RU, GN, SMOTER, SMOGN, WERCS at φ thresholds 0.5 \
and 0.8; for the MLP Balanced MSE, ConR, RnC, UVOTE and VIR; blends of plain with the best \
re-weighted model (λ 0.25, 0.5, 0.75).\n\nExamples:\n  dirkit select \
datasets/abalone/abalone.csv --target rings\n  dirkit select datasets/wine-quality/winequality-red.csv \
--target quality --learner all --objective sera --format json > wine.json\n  dirkit select \
houses.csv --target price --nominal district --methods lds,smogn --max-all-loss 0.05 --plot figs"
)]
pub struct SelectArgs {
    /// CSV/TSV file with a header row.
    #[arg(value_name = "FILE")]
    pub input: String,
    /// The numeric target column.
    #[arg(long, value_name = "NAME")]
    pub target: String,
    /// Columns holding categories even when they look numeric (comma-separated names).
    #[arg(long, value_name = "COL,…")]
    pub nominal: Option<String>,
    /// The learners to try.
    #[arg(long, value_enum, default_value_t = LearnerArg::Ridge)]
    pub learner: LearnerArg,
    /// Cross-validation folds.
    #[arg(long, default_value_t = 5, value_name = "K")]
    pub folds: usize,
    /// Repetitions of the K folds, each with its own shuffle.
    #[arg(long, default_value_t = 1, value_name = "R")]
    pub repeats: usize,
    /// Share of rows held out to check the choice (0 selects on every row, with no check).
    #[arg(long, default_value_t = 0.2, value_name = "F")]
    pub test_size: f64,
    /// What the choice optimises.
    #[arg(long, value_enum, default_value_t = ObjectiveArg::FewMae)]
    pub objective: ObjectiveArg,
    /// Largest accepted loss in overall MAE against plain, relative (0.02 = 2 % worse).
    #[arg(long, default_value_t = 0.02, value_name = "F")]
    pub max_all_loss: f64,
    /// Method families to try, comma-separated (plain is always in): lds, denseweight,
    /// balanced-mse, conr, rnc, uvote, vir, ro, ru, gn, smoter, smogn, wercs, blend
    /// [default: all].
    #[arg(long, value_name = "M,…")]
    pub methods: Option<String>,
    /// Relevance threshold: rows with φ ≥ T are rare (stratification, F1).
    #[arg(long, default_value_t = 0.8, value_name = "T")]
    pub threshold: f64,
    /// MLP training epochs.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub epochs: usize,
    /// Seed of the folds, the resamplers and the MLP.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,
    /// How φ is built.
    #[command(flatten)]
    pub phi: PhiArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Also write the Pareto figure as DIR/pareto.png and DIR/pareto.svg (DIR is created).
    #[arg(long, value_name = "DIR")]
    pub plot: Option<String>,
    /// Overwrite the figures if they exist.
    #[arg(long)]
    pub force: bool,
}
