//! Cutting a policy's plain text into the sentences a promise can be quoted
//! from, exactly as they read.
//!
//! Policies are not tidy prose. Paragraphs end without a full stop; a lead-in
//! ends in a colon or semicolon and its sentence goes on in list items, on
//! lines of their own ("• …") or inline (" - Så länge … 7 år)."); table cells
//! arrive joined by tabs. So the text is read line by line, a line is cut into
//! list items and cells, and each of those into sentences at a full stop, a
//! question or exclamation mark followed by a space and a capital (not after
//! an abbreviation such as "t.ex." or "e.g."). A list item keeps its lead-in
//! as context: the quote is the item, what decides its meaning is both.

/// One sentence of the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence {
    /// The sentence exactly as the policy has it (trimmed).
    pub text: String,
    /// The lead-in of the list it is an item of, if any ("Vi sparar och
    /// lagrar dina personuppgifter;").
    pub lead_in: Option<String>,
}

impl Sentence {
    /// The lead-in and the sentence, to read its meaning from.
    pub fn context(&self) -> String {
        match &self.lead_in {
            Some(lead_in) => format!("{lead_in} {}", self.text),
            None => self.text.clone(),
        }
    }
}

/// Words that end in a full stop without ending a sentence.
const ABBREVIATIONS: [&str; 18] = [
    "t.ex", "bl.a", "d.v.s", "dvs", "m.m", "mm", "ca", "resp", "s.k", "fr.o.m", "t.o.m", "e.g",
    "i.e", "etc", "nr", "no", "vs", "jfr",
];

/// Bullet marks that start a list item on a line of its own.
const BULLETS: [char; 5] = ['•', '·', '*', '–', '‣'];

/// The sentences of `text`, in order.
pub fn split(text: &str) -> Vec<Sentence> {
    let mut sentences = Vec::new();
    // The last line's text when it ended as a lead-in (a colon or a
    // semicolon): the lines of items after it keep it.
    let mut lead_in: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            lead_in = None;
            continue;
        }
        let bulleted = trimmed.starts_with(BULLETS) || trimmed.starts_with("- ");
        let body = if bulleted {
            trimmed
                .trim_start_matches(BULLETS)
                .trim_start_matches("- ")
                .trim()
        } else {
            lead_in = None;
            trimmed
        };
        let line_lead = if bulleted { lead_in.clone() } else { None };
        for cell in body
            .split('\t')
            .map(str::trim)
            .filter(|cell| !cell.is_empty())
        {
            let mut lead = line_lead.clone();
            for item in inline_items(cell) {
                let parts = sentences_of(item);
                for (position, sentence) in parts.iter().enumerate() {
                    // Only an item's first sentence continues the lead-in.
                    sentences.push(Sentence {
                        text: (*sentence).to_owned(),
                        lead_in: if position == 0 { lead.clone() } else { None },
                    });
                }
                if ends_lead_in(item) {
                    lead = Some(last_sentence(item).to_owned());
                } else if parts.len() > 1 {
                    // Prose after the item: the list is over.
                    lead = None;
                }
            }
        }
        if !bulleted && ends_lead_in(body) {
            lead_in = Some(last_sentence(body).to_owned());
        }
    }
    sentences
}

/// Whether `text` ends as a lead-in to a list.
fn ends_lead_in(text: &str) -> bool {
    text.trim_end().ends_with([':', ';'])
}

/// The last sentence of `text`.
fn last_sentence(text: &str) -> &str {
    sentences_of(text).last().copied().unwrap_or(text)
}

/// A cell cut at inline list marks (" - " between items).
fn inline_items(cell: &str) -> Vec<&str> {
    cell.split(" - ")
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect()
}

/// `text` cut into sentences.
fn sentences_of(text: &str) -> Vec<&str> {
    let mut sentences = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (position, (index, character)) in chars.iter().enumerate() {
        if !matches!(character, '.' | '!' | '?') {
            continue;
        }
        // The end: a closing quote or bracket may follow the mark.
        let mut end = position + 1;
        while end < chars.len() && matches!(chars[end].1, '"' | '”' | '’' | '\'' | ')' | '»') {
            end += 1;
        }
        let Some(&(_, after)) = chars.get(end) else {
            continue;
        };
        if !after.is_whitespace() {
            continue;
        }
        let next = chars[end..]
            .iter()
            .map(|(_, c)| *c)
            .find(|c| !c.is_whitespace());
        let starts_anew = next.is_some_and(|c| {
            c.is_uppercase() || c.is_ascii_digit() || matches!(c, '"' | '“' | '”' | '(' | '•' | '-')
        });
        if !starts_anew || (*character == '.' && after_abbreviation(&text[start..*index])) {
            continue;
        }
        let cut = chars.get(end).map_or(text.len(), |(i, _)| *i);
        let sentence = text[start..cut].trim();
        if !sentence.is_empty() {
            sentences.push(sentence);
        }
        start = cut;
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        sentences.push(rest);
    }
    sentences
}

/// Whether `before` (the text up to a full stop) ends in an abbreviation.
fn after_abbreviation(before: &str) -> bool {
    let word = before
        .rsplit(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
        .to_lowercase();
    ABBREVIATIONS.contains(&word.as_str())
        || (word.chars().count() == 1 && word.chars().all(char::is_alphabetic))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<String> {
        split(text).into_iter().map(|s| s.text).collect()
    }

    #[test]
    fn sentences_end_at_a_stop_before_a_capital_not_after_an_abbreviation() {
        assert_eq!(
            texts("Vi sparar t.ex. fakturor i 7 år. Sedan raderas de! Är det klart? Ja"),
            vec![
                "Vi sparar t.ex. fakturor i 7 år.",
                "Sedan raderas de!",
                "Är det klart?",
                "Ja"
            ]
        );
        // An address and a date are no ends.
        assert_eq!(
            texts("Skriv till privacy@firma.se om du vill. Upprättad 2018-04-26"),
            vec![
                "Skriv till privacy@firma.se om du vill.",
                "Upprättad 2018-04-26"
            ]
        );
    }

    #[test]
    fn a_paragraph_without_a_stop_is_a_sentence_and_quotes_close_it() {
        assert_eq!(
            texts(
                "Vi gallrar för att inte sitta på \"bra att ha uppgifter\". Nästa\n\nRubrik utan punkt\n"
            ),
            vec![
                "Vi gallrar för att inte sitta på \"bra att ha uppgifter\".",
                "Nästa",
                "Rubrik utan punkt"
            ]
        );
    }

    #[test]
    fn list_items_keep_their_lead_in_inline_and_on_lines() {
        let inline = split(
            "Vi sparar och lagrar dina personuppgifter; - Så länge vi har ett samtycke. - Så länge som vi är skyldiga (till exempel bokföringsunderlag, 7 år). Efteråt raderas de.",
        );
        assert_eq!(inline[0].text, "Vi sparar och lagrar dina personuppgifter;");
        assert_eq!(inline[1].text, "Så länge vi har ett samtycke.");
        assert_eq!(
            inline[1].lead_in.as_deref(),
            Some("Vi sparar och lagrar dina personuppgifter;")
        );
        assert_eq!(
            inline[2].text,
            "Så länge som vi är skyldiga (till exempel bokföringsunderlag, 7 år)."
        );
        assert!(inline[2].lead_in.is_some());
        assert_eq!(inline[3].text, "Efteråt raderas de.");
        assert_eq!(inline[3].lead_in, None);

        let lines = split(
            "Vi raderar:\n  • ansökningar när tjänsten är tillsatt\n  • offerter efter ett år\nSlut.",
        );
        assert_eq!(lines[1].text, "ansökningar när tjänsten är tillsatt");
        assert_eq!(
            lines[1].context(),
            "Vi raderar: ansökningar när tjänsten är tillsatt"
        );
        assert_eq!(lines[2].lead_in.as_deref(), Some("Vi raderar:"));
        assert_eq!(lines[3].lead_in, None);
    }

    #[test]
    fn table_cells_are_apart() {
        assert_eq!(
            texts("Ändamål\tLagringstid\nSupport\t36 månader från kontakten"),
            vec![
                "Ändamål",
                "Lagringstid",
                "Support",
                "36 månader från kontakten"
            ]
        );
    }
}
