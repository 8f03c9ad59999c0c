-- 0003: the knowledge base index (package flows/kb) and its misses.
--
-- The index is rebuilt as a whole by every import, in one transaction, so a
-- search sees either the old base or the new one. Indexed text is stored
-- already normalised by Go (folded, stop words dropped, stemmed, synonym
-- concepts added); the FTS5 tokenizer also removes diacritics, so the
-- table stays correct for text written with either ș/ş, ț/ţ.

CREATE TABLE kb_articles (
    seq         INTEGER NOT NULL PRIMARY KEY,   -- = kb_fts rowid
    id          TEXT    NOT NULL,
    lang        TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    service     TEXT    NOT NULL,
    keywords    TEXT    NOT NULL DEFAULT '',    -- comma-separated
    phrases     TEXT    NOT NULL DEFAULT '',    -- multi-word keywords as index terms, '|'-separated
    spoken      TEXT    NOT NULL,
    full        TEXT    NOT NULL,
    links       TEXT    NOT NULL DEFAULT '',    -- newline-separated
    reviewed_ns INTEGER NOT NULL DEFAULT 0,
    file        TEXT    NOT NULL DEFAULT '',
    UNIQUE (lang, id)
) STRICT;

-- Columns: title, keywords, body (spoken + full); rowid = kb_articles.seq.
-- Every token carries its language as a prefix (ro_buletin, en_passport):
-- a search reads only its language's postings, with no filter to join.
CREATE VIRTUAL TABLE kb_fts USING fts5(
    title, keywords, body,
    tokenize = "unicode61 remove_diacritics 2 tokenchars '_'"
);

-- Vocabulary: every index term per language and the number of articles
-- holding it (for IDF weights and to recognise unknown query words).
CREATE TABLE kb_terms (
    lang TEXT    NOT NULL,
    term TEXT    NOT NULL,
    df   INTEGER NOT NULL,
    PRIMARY KEY (lang, term)
) STRICT, WITHOUT ROWID;

-- Spelling neighbourhood of the vocabulary, to correct recognition errors
-- in query words: every term (4 letters or more) under itself and under
-- each form with one letter deleted. A query word and a term within one
-- edit (and most within two) share a key.
CREATE TABLE kb_terms_del (
    lang    TEXT NOT NULL,
    variant TEXT NOT NULL,
    term    TEXT NOT NULL,
    PRIMARY KEY (lang, variant, term)
) STRICT, WITHOUT ROWID;

-- The synonym list of the last import (one row per phrase of a group).
CREATE TABLE kb_synonyms (
    lang   TEXT    NOT NULL,
    grp    INTEGER NOT NULL,
    phrase TEXT    NOT NULL            -- index terms joined by spaces
) STRICT;

-- key: generation (bumped by every import), imported_ns, articles_ro, articles_en.
CREATE TABLE kb_meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- Queries the base did not answer confidently, personal data masked.
CREATE TABLE kb_misses (
    lang     TEXT    NOT NULL,
    query    TEXT    NOT NULL,
    count    INTEGER NOT NULL,
    first_ns INTEGER NOT NULL,
    last_ns  INTEGER NOT NULL,
    PRIMARY KEY (lang, query)
) STRICT;

CREATE INDEX kb_misses_last ON kb_misses (last_ns DESC);
