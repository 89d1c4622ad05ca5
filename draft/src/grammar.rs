//! The grammar of retention promises, in Swedish and English: how long
//! ("36 månader", "tre månader", "maximalt 12 månader", "12–36 months", "a
//! monthly routine"), from what ("från kontakten", "after the position is
//! filled", "efter räkenskapsårets slut"), and what kind of sentence it is (a
//! deadline to report, a limit on copies, a right, an open-ended "as long as
//! needed").
//!
//! Everything works on lower-cased text with regular expressions written out
//! here; nothing is learned and nothing leaves the binary. Each pattern is a
//! general form of the language (a number word, a unit, a bound word before
//! it), not a phrase of one policy.

use std::sync::LazyLock;

use regex::Regex;
pub use tillsyn_core::language::Language;

/// The language `text` is mostly written in: the one whose most common
/// small words it uses more.
pub fn detect_language(text: &str) -> Language {
    let lower = text.to_lowercase();
    let count = |words: &[&str]| {
        lower
            .split(|c: char| !c.is_alphabetic())
            .filter(|word| words.contains(word))
            .count()
    };
    let swedish = count(&[
        "och", "att", "som", "av", "för", "med", "är", "vi", "till", "på",
    ]);
    let english = count(&[
        "and", "the", "that", "of", "for", "with", "is", "we", "to", "on",
    ]);
    if english > swedish {
        Language::En
    } else {
        Language::Sv
    }
}

/// A unit of time as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Hours.
    Hours,
    /// Days.
    Days,
    /// Weeks.
    Weeks,
    /// Calendar months.
    Months,
    /// Years.
    Years,
}

/// Whether a period is the most or the least the data is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A limit: kept at most this long ("maximalt", "högst", "within", or
    /// nothing said).
    Most,
    /// A minimum: kept at least this long ("i tre månader innan den kan tas
    /// bort", "at least").
    Least,
}

/// A span of time found in a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// How many units.
    pub amount: u32,
    /// Which unit.
    pub unit: Unit,
    /// A limit or a minimum.
    pub bound: Bound,
    /// Written as a range ("12–36 månader"): its lower end; `amount` is the
    /// upper.
    pub range_from: Option<u32>,
    /// Read from a routine's rhythm ("månadsrutin", "every week").
    pub routine: bool,
}

impl Span {
    /// As tillsyn's config writes a period: `31d`, `3 months`, `7y`, `72h`.
    pub fn period(&self) -> String {
        match self.unit {
            Unit::Hours => format!("{}h", self.amount),
            Unit::Days => format!("{}d", self.amount),
            Unit::Weeks => format!("{}w", self.amount),
            Unit::Months => format!("{} months", self.amount),
            Unit::Years => format!("{}y", self.amount),
        }
    }
}

/// What starts a promise's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// A message's arrival (mail, the inbox).
    Received,
    /// The last contact or activity.
    LastActivity,
    /// A position being filled.
    PositionFilled,
    /// A customer relationship ending.
    CustomerEnded,
    /// The end of the fiscal year (bookkeeping, invoices, receipts).
    FiscalYearEnd,
    /// A case or matter being closed.
    CaseClosed,
    /// An incident being detected.
    Detected,
    /// A request being received (a data subject's request).
    Requested,
}

impl Clock {
    /// An event the policy names, after which the data goes: enough on its
    /// own for a rule ("when the position is filled"), where a general
    /// clock (a message's arrival, the fiscal year) needs a period.
    pub fn is_event(self) -> bool {
        matches!(
            self,
            Clock::PositionFilled | Clock::CustomerEnded | Clock::CaseClosed
        )
    }
}

/// A compiled pattern of this grammar; one that would not compile matches
/// nothing and is logged (they are this file's constants, and a test
/// compiles every one).
struct Pattern(Option<Regex>);

impl Pattern {
    fn is_match(&self, text: &str) -> bool {
        self.0.as_ref().is_some_and(|regex| regex.is_match(text))
    }

    fn captures<'t>(&self, text: &'t str) -> Option<regex::Captures<'t>> {
        self.0.as_ref()?.captures(text)
    }

    fn captures_iter<'r, 't>(
        &'r self,
        text: &'t str,
    ) -> impl Iterator<Item = regex::Captures<'t>> + use<'r, 't> {
        self.0
            .iter()
            .flat_map(move |regex| regex.captures_iter(text))
    }
}

fn regex(pattern: &str) -> Pattern {
    match Regex::new(pattern) {
        Ok(regex) => Pattern(Some(regex)),
        Err(error) => {
            tracing::error!(error = %error, "A draft-rules grammar pattern does not compile; it matches nothing.");
            Pattern(None)
        }
    }
}

/// Swedish number words up to 99, and "hundra".
const SV_NUMBER: &str = r"(?:(?:tjugo|trettio|fyrtio|femtio|sextio|sjuttio|åttio|nittio)(?:en|ett|två|tre|fyra|fem|sex|sju|åtta|nio)?|tretton|fjorton|femton|sexton|sjutton|arton|nitton|elva|tolv|tio|hundra|en|ett|två|tre|fyra|fem|sex|sju|åtta|nio)";
/// English number words up to 99, and "hundred", "a", "an".
const EN_NUMBER: &str = r"(?:(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[- ](?:one|two|three|four|five|six|seven|eight|nine))?|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|eleven|twelve|ten|hundred|one|two|three|four|five|six|seven|eight|nine|an|a)";

const SV_UNIT: &str = r"(?:år(?:en)?|månad(?:er|en|erna)?|mån|veckor(?:na)?|veckan?|dygn(?:et)?|dag(?:ar|en|arna)?|timm(?:e|ar|en|arna))";
const EN_UNIT: &str = r"(?:years?|months?|weeks?|days?|hours?|hrs?)";

static SV_SPAN: LazyLock<Pattern> = LazyLock::new(|| {
    regex(&format!(
        r"\b(?P<from>\d+|{SV_NUMBER})?(?:\s*(?:–|—|-|till)\s*)?\b(?P<n>\d+|{SV_NUMBER})\s*(?P<unit>{SV_UNIT})\b"
    ))
});
static EN_SPAN: LazyLock<Pattern> = LazyLock::new(|| {
    regex(&format!(
        r"\b(?P<from>\d+|{EN_NUMBER})?(?:\s*(?:–|—|-|to)\s*)?\b(?P<n>\d+|{EN_NUMBER})[\s-]*(?P<unit>{EN_UNIT})\b"
    ))
});
static SV_HALF_YEAR: LazyLock<Pattern> =
    LazyLock::new(|| regex(r"\b(?:ett\s+)?halvår(?:et)?\b|\bett\s+halvt\s+år\b"));
static EN_HALF_YEAR: LazyLock<Pattern> =
    LazyLock::new(|| regex(r"\bhalf\s+a\s+year\b|\bsix-month\b"));
/// A minimum: "minst", "åtminstone", "innan den kan tas bort".
static SV_LEAST: LazyLock<Pattern> = LazyLock::new(|| {
    regex(
        r"\b(?:minst|åtminstone|minimum)\b|\binnan\s+(?:\w+\s+){0,3}(?:kan|får)\s+(?:tas\s+bort|raderas|gallras|förstöras)",
    )
});
static EN_LEAST: LazyLock<Pattern> = LazyLock::new(|| {
    regex(
        r"\b(?:at\s+least|minimum\s+of|no\s+less\s+than|not\s+less\s+than)\b|\bbefore\s+(?:\w+\s+){0,3}(?:can|may)\s+be\s+(?:deleted|removed|erased|destroyed)",
    )
});
/// A routine's rhythm: "månadsrutin", "varje vecka", "monthly".
static SV_ROUTINE: LazyLock<Pattern> = LazyLock::new(|| {
    regex(
        r"\b(?P<month>månadsrutin\w*|månadsvis|månatlig\w*|varje\s+månad|en\s+gång\s+i\s+månaden)\b|\b(?P<week>veckorutin\w*|veckovis|varje\s+vecka|en\s+gång\s+i\s+veckan)\b|\b(?P<day>dagligen|varje\s+dag)\b",
    )
});
static EN_ROUTINE: LazyLock<Pattern> = LazyLock::new(|| {
    regex(
        r"\b(?P<month>monthly|every\s+month|each\s+month|once\s+a\s+month)\b|\b(?P<week>weekly|every\s+week|each\s+week|once\s+a\s+week)\b|\b(?P<day>daily|every\s+day|each\s+day)\b",
    )
});

/// The number a word or digits stand for.
fn number(word: &str, lang: Language) -> Option<u32> {
    if let Ok(value) = word.parse::<u32>() {
        return Some(value);
    }
    let (units, teens, tens): (&[&str], &[&str], &[&str]) = match lang {
        Language::Sv => (
            &[
                "noll", "ett", "två", "tre", "fyra", "fem", "sex", "sju", "åtta", "nio",
            ],
            &[
                "tio", "elva", "tolv", "tretton", "fjorton", "femton", "sexton", "sjutton",
                "arton", "nitton",
            ],
            &[
                "", "", "tjugo", "trettio", "fyrtio", "femtio", "sextio", "sjuttio", "åttio",
                "nittio",
            ],
        ),
        Language::En => (
            &[
                "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
            ],
            &[
                "ten",
                "eleven",
                "twelve",
                "thirteen",
                "fourteen",
                "fifteen",
                "sixteen",
                "seventeen",
                "eighteen",
                "nineteen",
            ],
            &[
                "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty",
                "ninety",
            ],
        ),
    };
    let word = word.trim();
    match (lang, word) {
        (Language::Sv, "en") | (Language::En, "a" | "an") => return Some(1),
        (Language::Sv, "hundra") | (Language::En, "hundred") => return Some(100),
        _ => {}
    }
    if let Some(unit) = units.iter().position(|unit| *unit == word) {
        return Some(unit as u32);
    }
    if let Some(teen) = teens.iter().position(|teen| *teen == word) {
        return Some(10 + teen as u32);
    }
    for (index, ten) in tens.iter().enumerate().skip(2) {
        if let Some(rest) = word.strip_prefix(ten) {
            let rest = rest.trim_start_matches(['-', ' ']);
            if rest.is_empty() {
                return Some(index as u32 * 10);
            }
            let unit = match (lang, rest) {
                (Language::Sv, "en") => Some(1),
                _ => units
                    .iter()
                    .position(|unit| *unit == rest)
                    .map(|u| u as u32),
            }?;
            return Some(index as u32 * 10 + unit);
        }
    }
    None
}

fn unit(word: &str) -> Option<Unit> {
    let word = word.trim();
    Some(if word.starts_with("år") || word.starts_with("year") {
        Unit::Years
    } else if word.starts_with("mån") || word.starts_with("month") {
        Unit::Months
    } else if word.starts_with("veck") || word.starts_with("week") {
        Unit::Weeks
    } else if word.starts_with("dag") || word.starts_with("dygn") || word.starts_with("day") {
        Unit::Days
    } else if word.starts_with("tim") || word.starts_with("hour") || word.starts_with("hr") {
        Unit::Hours
    } else {
        return None;
    })
}

/// The longest span of time `text` states, as a limit unless it reads as a
/// minimum; a range gives its upper end. A routine's rhythm counts as a span
/// ("månadsrutin": a month, written as 31 days). `None` when none is stated.
pub fn span(text: &str, lang: Language) -> Option<Span> {
    let lower = text.to_lowercase();
    let (pattern, half, least, routine) = match lang {
        Language::Sv => (&*SV_SPAN, &*SV_HALF_YEAR, &*SV_LEAST, &*SV_ROUTINE),
        Language::En => (&*EN_SPAN, &*EN_HALF_YEAR, &*EN_LEAST, &*EN_ROUTINE),
    };
    let bound = if least.is_match(&lower) {
        Bound::Least
    } else {
        Bound::Most
    };
    let mut found: Vec<Span> = Vec::new();
    for captures in pattern.captures_iter(&lower) {
        let (Some(amount), Some(unit)) = (
            captures.name("n").and_then(|n| number(n.as_str(), lang)),
            captures.name("unit").and_then(|u| unit(u.as_str())),
        ) else {
            continue;
        };
        // "ett år" is a year; a bare "a"/"en" before a unit only counts when
        // it stands for one (it always does, grammatically).
        let mut amount = amount;
        let mut range_from = captures
            .name("from")
            .and_then(|from| number(from.as_str(), lang));
        // "twenty-four" read as a range of twenty to four is one number.
        if let Some(tens) = range_from
            && tens >= 20
            && tens % 10 == 0
            && amount < 10
        {
            amount += tens;
            range_from = None;
        }
        let range_from = range_from.filter(|from| *from < amount);
        found.push(Span {
            amount,
            unit,
            bound,
            range_from,
            routine: false,
        });
    }
    if half.is_match(&lower) {
        found.push(Span {
            amount: 6,
            unit: Unit::Months,
            bound,
            range_from: None,
            routine: false,
        });
    }
    if let Some(captures) = routine.captures(&lower) {
        let (amount, unit) = if captures.name("month").is_some() {
            (31, Unit::Days)
        } else if captures.name("week").is_some() {
            (7, Unit::Days)
        } else {
            (1, Unit::Days)
        };
        found.push(Span {
            amount,
            unit,
            bound: Bound::Most,
            range_from: None,
            routine: true,
        });
    }
    found.into_iter().max_by_key(|span| {
        let hours: u64 = match span.unit {
            Unit::Hours => 1,
            Unit::Days => 24,
            Unit::Weeks => 24 * 7,
            Unit::Months => 24 * 30,
            Unit::Years => 24 * 365,
        };
        u64::from(span.amount) * hours
    })
}

static SV_CLOCKS: LazyLock<Vec<(Clock, Pattern)>> = LazyLock::new(|| {
    vec![
        (
            Clock::Detected,
            regex(r"\bupptäck(?:t|ts|ten|andet)\b|\bfått\s+kännedom\b|\bkännedom\s+om\b"),
        ),
        (
            Clock::PositionFilled,
            regex(r"\btillsatt\w*\b|\btillsätts\b|\btjänsten\s+är\s+besatt\b"),
        ),
        (
            Clock::CustomerEnded,
            regex(
                r"\bså\s+länge\s+(?:som\s+)?(?:du|ni|kunden)\s+är\s+kund\w*|\b(?:avslutat|avslutad|upphört)\s+kund(?:förhållande|relation)\w*|\bkund(?:förhållande|relation)\w*\s+(?:har\s+)?(?:upphör\w*|avslut\w*|har\s+upphört)|\bslutat\s+vara\s+kund\b|\btidigare\s+kund\w*",
            ),
        ),
        (
            Clock::CaseClosed,
            regex(
                r"\bärende\w*\s+(?:är|har\s+blivit|blivit)\s+(?:avklarat|avslutat|stängt|klart|löst)\b|\bavslutat\s+ärende\b|\bärendet\s+(?:har\s+)?avslutats\b",
            ),
        ),
        (
            Clock::LastActivity,
            regex(
                r"\b(?:från|efter|sedan)\s+(?:den\s+)?(?:senaste\s+)?kontakt(?:en)?\b|\bsenaste\s+(?:kontakt\w*|aktivitet\w*)",
            ),
        ),
        (
            Clock::FiscalYearEnd,
            regex(
                r"\bräkenskapsår\w*|\bbokför\w*|\bfaktur\w*|\bkvitt(?:o|on|ot)\b|\bverifikation\w*",
            ),
        ),
        (
            Clock::Requested,
            regex(r"\b(?:din|er|en)\s+begäran\b|\bbegäran\s+(?:om|har)\b"),
        ),
        (
            Clock::Received,
            regex(r"\binkorg\w*|\be-?post\w*|\bmail(?:et|en|s)?\b|\bmejl\w*"),
        ),
    ]
});

static EN_CLOCKS: LazyLock<Vec<(Clock, Pattern)>> = LazyLock::new(|| {
    vec![
        (
            Clock::Detected,
            regex(
                r"\b(?:detection|discovery|becoming\s+aware|become\s+aware)\b|\bafter\s+(?:we\s+)?(?:detect|discover)\w*",
            ),
        ),
        (
            Clock::PositionFilled,
            regex(r"\b(?:position|role|vacancy|job|post)\s+(?:is|has\s+been|was|being)\s+filled\b"),
        ),
        (
            Clock::CustomerEnded,
            regex(
                r"\bas\s+long\s+as\s+you\s+(?:are|remain)\s+(?:a|our)\s+customer\b|\b(?:customer|client)\s+relationship\s+(?:ends|ended|has\s+ended|is\s+terminated|terminates)\b|\bend\s+of\s+the\s+(?:customer|client)\s+relationship\b|\b(?:stop|cease)\s+being\s+(?:a|our)\s+customer\b|\bformer\s+customers?\b",
            ),
        ),
        (
            Clock::CaseClosed,
            regex(
                r"\b(?:case|matter|ticket)\s+(?:is|has\s+been|was)\s+(?:closed|resolved|completed)\b|\bclosing\s+(?:the|a)\s+(?:case|matter|ticket)\b",
            ),
        ),
        (
            Clock::LastActivity,
            regex(
                r"\b(?:from|after|since)\s+(?:the\s+|your\s+|our\s+)?(?:last|latest|most\s+recent)?\s*contact\b|\blast\s+(?:activity|contact|interaction)\b",
            ),
        ),
        (
            Clock::FiscalYearEnd,
            regex(
                r"\b(?:financial|fiscal|accounting)\s+year\b|\bbookkeeping\b|\baccounting\s+records\b|\binvoices?\b|\breceipts?\b",
            ),
        ),
        (
            Clock::Requested,
            regex(r"\b(?:your|a|the)\s+request\b|\breceipt\s+of\s+(?:your|a|the)\s+request\b"),
        ),
        (
            Clock::Received,
            regex(r"\binbox\w*|\be-?mails?\b|\bmessages?\b"),
        ),
    ]
});

/// What starts the clock in `text`: the first of the known events it names,
/// in the order the patterns are tried (the most specific first).
pub fn clock(text: &str, lang: Language) -> Option<Clock> {
    let lower = text.to_lowercase();
    let clocks = match lang {
        Language::Sv => &*SV_CLOCKS,
        Language::En => &*EN_CLOCKS,
    };
    clocks
        .iter()
        .find(|(_, pattern)| pattern.is_match(&lower))
        .map(|(clock, _)| *clock)
}

/// The kinds of sentence the drafter tells apart, before any period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cue {
    /// Cookies: a web-site notice, not a promise about stores.
    Cookies,
    /// A data subject's right (access, erasure, objection, …).
    Right,
    /// Removal on unsubscribing or a marketing block: a conflict between two
    /// stores, not a clock.
    OptOut,
    /// Fewer people copied on mail.
    FewerCopies,
    /// Personal data sent by mail as little as possible.
    LessMail,
    /// Some other minimisation, with nothing to measure.
    Minimise,
    /// A deadline to report or answer ("inom 72 timmar", "within 30 days").
    Deadline,
    /// Kept, stored or deleted: a retention or deletion promise.
    Retention,
}

struct CuePatterns {
    cookies: Pattern,
    right: Pattern,
    opt_out: Pattern,
    removal: Pattern,
    copies: Pattern,
    less_mail: Pattern,
    minimise: Pattern,
    deadline: Pattern,
    keep: Pattern,
    limit: Pattern,
    needed: Pattern,
    future: Pattern,
    routine: Pattern,
    while_condition: Pattern,
}

impl CuePatterns {
    #[cfg(test)]
    fn all(&self) -> [&Pattern; 14] {
        [
            &self.cookies,
            &self.right,
            &self.opt_out,
            &self.removal,
            &self.copies,
            &self.less_mail,
            &self.minimise,
            &self.deadline,
            &self.keep,
            &self.limit,
            &self.needed,
            &self.future,
            &self.routine,
            &self.while_condition,
        ]
    }
}

static SV_CUES: LazyLock<CuePatterns> = LazyLock::new(|| CuePatterns {
    cookies: regex(r"\bcookies?\b|\bkakor\b"),
    right: regex(
        r"\b(?:du|ni|kunden|den\s+registrerade|man|användaren)\b[^.;]{0,40}\b(?:rätt|begära|begär|kräva|kräver)\b|\brätt\s+till\s+(?:radering|rättelse|tillgång|registerutdrag|dataportabilitet|invändning|begränsning)",
    ),
    opt_out: regex(r"\bavprenumerer\w*|\bavregistrer\w*|\bdirektreklamspärr\w*|\breklamspärr\w*"),
    removal: regex(
        r"\bradera\w*|\btas\s+bort\b|\bta\s+bort\b|\bgallr\w*|\banonymiser\w*|\bförsvinn\w*|\bförstör(?:s|as|ts|des|a)\b|\bmakuler\w*|\brensa(?:s|r|t|des)?\b|\bspärr\w*",
    ),
    copies: regex(r"\(cc:?\)|\bcc\b|\bkopierade\b|\bkopior\b|\bkopia\b"),
    less_mail: regex(
        r"\bskicka\w*\s+(?:\w+\s+){0,2}personuppgifter\s+(?:per|via|med|i|över)\s+(?:e-?post|e-?mail|mail|mejl)",
    ),
    minimise: regex(
        r"\bminimera\w*|\bså\s+lite(?:n)?\b|\bså\s+liten\s+utsträckning\b|\bså\s+få\b|\bbegränsa\w*\s+spridning",
    ),
    deadline: regex(
        r"\binom\b.*\b(?:rapporter\w*|anmäl\w*|svara\w*|besvara\w*|meddela\w*|underrätta\w*|åtgärda\w*)|\b(?:rapporter\w*|anmäl\w*|svara\w*|besvara\w*|meddela\w*|underrätta\w*|åtgärda\w*)\b.*\binom\b",
    ),
    keep: regex(
        r"\bspar(?:a|as|ar|ad|at|ade)\b|\blagr(?:a|as|ar|ad|at|ade)\b|\bbehåll\w*|\bbevara\w*|\barkiver\w*|\bfinns\s+kvar\b|\bligger\s+kvar\b",
    ),
    limit: regex(r"\binte\s+längre\s+än\b|\bså\s+länge\b|\btills\b|\bhögst\b|\bmaximalt\b"),
    needed: regex(
        r"\bså\s+länge\s+(?:som\s+)?(?:det|de|vi|uppgifterna)\s+(?:\w+\s+){0,2}(?:behövs|krävs|är\s+nödvändig\w*|behöver|är\s+relevant\w*)|\b(?:inte\s+)?längre\s+än\s+(?:vad\s+)?(?:det\s+är\s+|som\s+är\s+)?(?:nödvändigt|vi\s+behöver|som\s+behövs|behövs|krävs)|\binte\s+längre\s+är\s+(?:i\s+)?behov\b|\binte\s+längre\s+(?:behövs|är\s+nödvändig\w*|är\s+relevant\w*)",
    ),
    future: regex(r"\bframtida\b|\bkommande\s+(?:tjänster|rekryteringar|arbetstillfällen)"),
    routine: regex(
        r"\bregelbund\w*|\bgallringsplan\w*|\bfastställda\s+rutiner\b|\brutiner\s+för\b",
    ),
    while_condition: regex(r"\bså\s+länge\b|\btills\b"),
});

static EN_CUES: LazyLock<CuePatterns> = LazyLock::new(|| CuePatterns {
    cookies: regex(r"\bcookies?\b"),
    right: regex(
        r"\b(?:you|the\s+data\s+subject|customers?|users?)\b[^.;]{0,40}\b(?:right|request|ask|demand)\b|\bright\s+(?:to|of)\s+(?:erasure|access|rectification|portability|object|restriction|be\s+forgotten)",
    ),
    opt_out: regex(r"\bunsubscrib\w*|\bopt(?:-|\s)?out\w*|\bmarketing\s+block\w*"),
    removal: regex(
        r"\bdelet\w*|\bremov\w*|\berase\w*|\berasure\b|\banonymi[sz]\w*|\bdestroy\w*|\bpurg\w*|\bdispos\w*",
    ),
    copies: regex(r"\(cc:?\)|\bcc\b|\bcopied\b|\bcarbon\s+cop\w*|\bcopies\b"),
    less_mail: regex(
        r"\bsend\w*\s+(?:\w+\s+){0,2}personal\s+(?:data|information)\s+(?:by|via|over|in)\s+(?:e-?mail|mail)",
    ),
    minimise: regex(
        r"\bminimi[sz]\w*|\bas\s+little\s+as\b|\bas\s+few\s+as\b|\blimit\w*\s+the\s+spread",
    ),
    deadline: regex(
        r"\bwithin\b.*\b(?:report\w*|notif\w*|respond\w*|answer\w*|repl\w*|inform\w*)|\b(?:report\w*|notif\w*|respond\w*|answer\w*|repl\w*|inform\w*)\b.*\bwithin\b",
    ),
    keep: regex(
        r"\bkeep\w*|\bkept\b|\bretain\w*|\bretention\b|\bstor(?:e|ed|es|ing)\b|\barchiv\w*",
    ),
    limit: regex(r"\bno\s+longer\s+than\b|\bas\s+long\s+as\b|\buntil\b|\bat\s+most\b|\bmaximum\b"),
    needed: regex(
        r"\bas\s+long\s+as\s+(?:\w+\s+){0,3}(?:necessary|needed|required|relevant)\b|\bno\s+longer\s+than\s+(?:\w+\s+){0,3}(?:necessary|needed|required)\b|\bno\s+longer\s+(?:needed|necessary|required|relevant)\b",
    ),
    future: regex(r"\bfuture\s+(?:positions?|vacancies|roles?|opportunities|recruitment)\b"),
    routine: regex(r"\bregular\w*|\broutine\w*|\bretention\s+schedule\b|\bdisposal\s+plan\b"),
    while_condition: regex(r"\bas\s+long\s+as\b|\buntil\b"),
});

fn cues(lang: Language) -> &'static CuePatterns {
    match lang {
        Language::Sv => &SV_CUES,
        Language::En => &EN_CUES,
    }
}

/// What kind of sentence `text` is, by the first cue that decides it; `None`
/// for a sentence that promises nothing tillsyn could check or flag.
pub fn cue(text: &str, lang: Language) -> Option<Cue> {
    let lower = text.to_lowercase();
    let cues = cues(lang);
    if cues.cookies.is_match(&lower) {
        return Some(Cue::Cookies);
    }
    if cues.right.is_match(&lower) {
        return Some(Cue::Right);
    }
    let removal = cues.removal.is_match(&lower);
    if cues.opt_out.is_match(&lower)
        && (removal || lower.contains("spärr") || lower.contains("block"))
    {
        return Some(Cue::OptOut);
    }
    let minimise = cues.minimise.is_match(&lower);
    if minimise && cues.copies.is_match(&lower) {
        return Some(Cue::FewerCopies);
    }
    if cues.less_mail.is_match(&lower) {
        return Some(Cue::LessMail);
    }
    if minimise {
        return Some(Cue::Minimise);
    }
    if cues.deadline.is_match(&lower) && span(&lower, lang).is_some() {
        return Some(Cue::Deadline);
    }
    if removal || cues.keep.is_match(&lower) {
        return Some(Cue::Retention);
    }
    None
}

/// Why a retention sentence without a period cannot be checked as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unbounded {
    /// Kept as long as it is needed ("så länge det behövs").
    Needed,
    /// Kept for future needs ("för eventuella framtida arbetstillfällen").
    Future,
    /// A routine of regular disposal ("regelbunden gallring").
    Routine,
    /// Kept while a condition holds ("så länge vi har ett samtycke").
    Condition,
    /// Deleted or limited, with no period or event named.
    Unstated,
}

impl Unbounded {
    /// Open-ended: it bounds nothing, even beside an event ("… eller så
    /// länge det finns en kundrelation").
    pub fn open_ended(self) -> bool {
        matches!(self, Unbounded::Needed | Unbounded::Future)
    }

    /// The reason, as the draft states it (with the policy's own words for
    /// a Swedish policy).
    pub fn reason(self, lang: Language) -> &'static str {
        match (self, lang) {
            (Unbounded::Needed, Language::Sv) => {
                "kept as long as it is needed (\"så länge det behövs\"): no period is named"
            }
            (Unbounded::Needed, Language::En) => "kept as long as it is needed: no period is named",
            (Unbounded::Future, _) => {
                "kept for an open-ended purpose (future needs): no period is named"
            }
            (Unbounded::Routine, Language::Sv) => {
                "a routine of regular disposal (\"regelbunden gallring\") without a period"
            }
            (Unbounded::Routine, Language::En) => "a routine of regular disposal without a period",
            (Unbounded::Condition, _) => {
                "kept while a condition holds that no store records a date for"
            }
            (Unbounded::Unstated, _) => {
                "deletion or retention without a period or an event to count from"
            }
        }
    }
}

/// Why a retention sentence without a period cannot be checked as written;
/// `None` when it is no more than a statement that data is kept (no limit,
/// no deletion).
pub fn not_checkable(text: &str, lang: Language) -> Option<Unbounded> {
    let lower = text.to_lowercase();
    let cues = cues(lang);
    let found = if cues.needed.is_match(&lower) {
        Unbounded::Needed
    } else if cues.future.is_match(&lower) {
        Unbounded::Future
    } else if cues.routine.is_match(&lower) {
        Unbounded::Routine
    } else if cues.while_condition.is_match(&lower) {
        Unbounded::Condition
    } else if cues.removal.is_match(&lower) || cues.limit.is_match(&lower) {
        Unbounded::Unstated
    } else {
        return None;
    };
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period(text: &str, lang: Language) -> Option<String> {
        span(text, lang).map(|span| span.period())
    }

    /// Every duration form of the issue, in both languages, and near-misses
    /// that must not read as periods.
    #[test]
    fn durations_as_people_write_them() {
        let swedish = [
            ("sparas i 36 månader", Some("36 months")),
            ("sparas i tre månader", Some("3 months")),
            ("sparas i sju år", Some("7y")),
            ("sparas i 7 år", Some("7y")),
            ("inom 72 timmar", Some("72h")),
            ("i ett år", Some("1y")),
            ("maximalt 12 månader", Some("12 months")),
            ("högst två år", Some("2y")),
            ("under trettiosex månader", Some("36 months")),
            ("tjugofyra timmar", Some("24h")),
            ("14 dagar", Some("14d")),
            ("två veckor", Some("2w")),
            ("ett halvår", Some("6 months")),
            ("i sin månadsrutin", Some("31d")),
            ("en gång i veckan", Some("7d")),
            ("7år", Some("7y")),
            // Near-misses: a date, a year, a count of things, an amount.
            ("uppdaterades senast maj 2018", None),
            ("Upprättad 2018-04-26", None),
            ("tre personer", None),
            ("så länge det behövs", None),
            ("årsredovisningen", None),
            ("i tre exemplar", None),
        ];
        for (text, expected) in swedish {
            assert_eq!(period(text, Language::Sv).as_deref(), expected, "{text}");
        }
        let english = [
            ("kept for 36 months", Some("36 months")),
            ("for three months", Some("3 months")),
            ("seven years", Some("7y")),
            ("within 72 hours", Some("72h")),
            ("for a year", Some("1y")),
            ("a maximum of 12 months", Some("12 months")),
            ("at most two years", Some("2y")),
            ("twenty-four months", Some("24 months")),
            ("a six-month period", Some("6 months")),
            ("30 days", Some("30d")),
            ("in the monthly routine", Some("31d")),
            ("updated in May 2018", None),
            ("three people", None),
            ("as long as necessary", None),
        ];
        for (text, expected) in english {
            assert_eq!(period(text, Language::En).as_deref(), expected, "{text}");
        }
    }

    #[test]
    fn a_range_takes_its_upper_end_and_says_so() {
        for (text, lang) in [
            ("sparas 12–36 månader", Language::Sv),
            ("sparas 12-36 månader", Language::Sv),
            ("sparas tolv till trettiosex månader", Language::Sv),
            ("kept for 12 to 36 months", Language::En),
        ] {
            let span = span(text, lang).expect(text);
            assert_eq!((span.amount, span.range_from), (36, Some(12)), "{text}");
            assert_eq!(span.unit, Unit::Months);
        }
    }

    #[test]
    fn a_minimum_reads_as_one() {
        let least = [
            ("i tre månader innan den kan tas bort", Language::Sv),
            ("sparas i minst sju år", Language::Sv),
            ("kept for at least seven years", Language::En),
            ("for three months before it can be deleted", Language::En),
        ];
        for (text, lang) in least {
            assert_eq!(
                span(text, lang).map(|s| s.bound),
                Some(Bound::Least),
                "{text}"
            );
        }
        let most = [
            ("raderas efter maximalt 36 månader", Language::Sv),
            ("deleted within three months", Language::En),
        ];
        for (text, lang) in most {
            assert_eq!(
                span(text, lang).map(|s| s.bound),
                Some(Bound::Most),
                "{text}"
            );
        }
    }

    /// Every clock start of the issue, and near-misses.
    #[test]
    fn events_that_start_the_clock() {
        let swedish = [
            (
                "raderas efter 36 månader från kontakten",
                Some(Clock::LastActivity),
            ),
            ("efter senaste kontakten", Some(Clock::LastActivity)),
            (
                "efter att tjänsten är tillsatt",
                Some(Clock::PositionFilled),
            ),
            (
                "efter aktuell tjänst är tillsatt",
                Some(Clock::PositionFilled),
            ),
            ("efter avslutat kundförhållande", Some(Clock::CustomerEnded)),
            ("så länge du är kund", Some(Clock::CustomerEnded)),
            (
                "så länge som du är kund hos oss",
                Some(Clock::CustomerEnded),
            ),
            (
                "när kundförhållandet har upphört",
                Some(Clock::CustomerEnded),
            ),
            ("efter räkenskapsårets slut", Some(Clock::FiscalYearEnd)),
            ("bokföringsunderlag, 7 år", Some(Clock::FiscalYearEnd)),
            ("fakturor och kvitton", Some(Clock::FiscalYearEnd)),
            ("inom 72 timmar efter upptäckt", Some(Clock::Detected)),
            ("när ett ärende är avklarat", Some(Clock::CaseClosed)),
            ("e-postmeddelanden från inkorgen", Some(Clock::Received)),
            ("besvarar din begäran inom en månad", Some(Clock::Requested)),
            // Near-misses.
            ("kontakta oss", None),
            ("kunden kan begära", None),
            ("vi tar kontakt", None),
            ("upptagen", None),
        ];
        for (text, expected) in swedish {
            assert_eq!(clock(text, Language::Sv), expected, "{text}");
        }
        let english = [
            ("36 months from the last contact", Some(Clock::LastActivity)),
            (
                "after the position has been filled",
                Some(Clock::PositionFilled),
            ),
            (
                "after the customer relationship ends",
                Some(Clock::CustomerEnded),
            ),
            ("as long as you are a customer", Some(Clock::CustomerEnded)),
            (
                "after the end of the financial year",
                Some(Clock::FiscalYearEnd),
            ),
            ("within 72 hours of detection", Some(Clock::Detected)),
            ("when the case is closed", Some(Clock::CaseClosed)),
            ("messages in the inbox", Some(Clock::Received)),
            ("contact us", None),
            ("the position of the data", None),
        ];
        for (text, expected) in english {
            assert_eq!(clock(text, Language::En), expected, "{text}");
        }
    }

    #[test]
    fn sentence_kinds_and_why_some_cannot_be_checked() {
        let swedish = [
            (
                "Vi använder cookies som sparas på din dator.",
                Some(Cue::Cookies),
            ),
            ("Du har rätt att begära registerutdrag.", Some(Cue::Right)),
            (
                "Kunden kan när som helst begära att få sina personuppgifter raderade.",
                Some(Cue::Right),
            ),
            ("Vi har rätt att ändra policyn.", None),
            (
                "Du kan avprenumerera, och din e-post försvinner då från våra listor.",
                Some(Cue::OptOut),
            ),
            (
                "Vi strävar efter att minimera de personer som blir kopierade (CC:).",
                Some(Cue::FewerCopies),
            ),
            (
                "Vi ska i så liten utsträckning som möjligt skicka personuppgifter per mail.",
                Some(Cue::LessMail),
            ),
            (
                "Vi samlar in så lite information som nödvändigt.",
                Some(Cue::Minimise),
            ),
            (
                "Incidenter rapporterar vi inom 72 timmar efter upptäckt.",
                Some(Cue::Deadline),
            ),
            (
                "Ansökan raderas när tjänsten är tillsatt.",
                Some(Cue::Retention),
            ),
            ("Fakturor sparas i 7 år.", Some(Cue::Retention)),
            ("Kontakta oss på support@example.se.", None),
            ("Denna policy uppdaterades senast maj 2018.", None),
        ];
        for (text, expected) in swedish {
            assert_eq!(cue(text, Language::Sv), expected, "{text}");
        }
        let reasons = [
            (
                "Vi lagrar uppgifterna så länge det behövs.",
                Some(Unbounded::Needed),
            ),
            (
                "Vi sparar aldrig personuppgifter längre än vad vi behöver.",
                Some(Unbounded::Needed),
            ),
            (
                "De gallras när de inte längre är relevanta.",
                Some(Unbounded::Needed),
            ),
            (
                "Ansökningar sparas för eventuella framtida arbetstillfällen.",
                Some(Unbounded::Future),
            ),
            (
                "Vi har rutiner för regelbunden gallring.",
                Some(Unbounded::Routine),
            ),
            (
                "Så länge vi har ett samtycke från din sida.",
                Some(Unbounded::Condition),
            ),
            (
                "All annan persondata ska raderas.",
                Some(Unbounded::Unstated),
            ),
            ("Alla uppgifter lagras i enlighet med GDPR.", None),
        ];
        for (text, expected) in reasons {
            assert_eq!(not_checkable(text, Language::Sv), expected, "{text}");
        }
        let english = [
            ("We use cookies.", Some(Cue::Cookies)),
            ("You have the right to request erasure.", Some(Cue::Right)),
            (
                "We minimise the people copied (CC) on mail.",
                Some(Cue::FewerCopies),
            ),
            (
                "We send personal data by email as little as possible.",
                Some(Cue::LessMail),
            ),
            (
                "We report incidents within 72 hours of detection.",
                Some(Cue::Deadline),
            ),
            (
                "Applications are deleted when the position has been filled.",
                Some(Cue::Retention),
            ),
            ("Contact us at privacy@example.com.", None),
        ];
        for (text, expected) in english {
            assert_eq!(cue(text, Language::En), expected, "{text}");
        }
        assert_eq!(
            not_checkable("We keep your data as long as necessary.", Language::En),
            Some(Unbounded::Needed)
        );
        assert_eq!(
            not_checkable("Applications are kept for future positions.", Language::En),
            Some(Unbounded::Future)
        );
    }

    #[test]
    fn every_pattern_compiles() {
        let mut patterns: Vec<&Pattern> = vec![
            &SV_SPAN,
            &EN_SPAN,
            &SV_HALF_YEAR,
            &EN_HALF_YEAR,
            &SV_LEAST,
            &EN_LEAST,
            &SV_ROUTINE,
            &EN_ROUTINE,
        ];
        patterns.extend(
            SV_CLOCKS
                .iter()
                .chain(EN_CLOCKS.iter())
                .map(|(_, pattern)| pattern),
        );
        patterns.extend(SV_CUES.all());
        patterns.extend(EN_CUES.all());
        assert_eq!(patterns.len(), 8 + 16 + 28);
        assert!(patterns.iter().all(|pattern| pattern.0.is_some()));
    }

    #[test]
    fn the_language_is_told_from_its_small_words() {
        assert_eq!(
            detect_language("Vi sparar fakturor och kvitton i sju år."),
            Language::Sv
        );
        assert_eq!(
            detect_language("We keep the invoices and receipts for seven years."),
            Language::En
        );
    }
}
