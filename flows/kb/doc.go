// Package kb is the knowledge base: the answers about the public services
// that the line gives callers, found from what they actually say.
//
// Content editors keep articles as Markdown files with a small front matter
// in flows/kb/ro/ and flows/kb/en/ (one file per article, the same id in
// both languages) and synonyms in flows/kb/synonyms.txt; LoadDir reads and
// validates them, Index.Import (or ImportDir) indexes them in the SQLite
// store in one transaction. The index is FTS5 (in every build: internal/sqlitefts5) with
// BM25 over title, keywords and text; queries and articles are folded
// (case, both spellings of ș and ț, ă, â, î), stripped of stop words and
// filler, stemmed, expanded with synonyms, and unknown query words are
// corrected to the nearest known word.
//
// # Contract with the flows runtime
//
// A flow calls Search with the caller's words and reads the first result:
//
//   - Score >= ConfidentScore (Result.Confident): speak its Spoken answer.
//   - HandoffScore <= Score < ConfidentScore: ask back, offering the first
//     one or two results ("did you mean X or Y?").
//   - Score < HandoffScore, or no result: ask to rephrase once, then hand
//     off to an operator.
//
// Whenever the first result is not Confident (or there is none), the
// runtime calls RecordMiss with the same language and query, so that
// editors see what the base does not answer (`ivrctl kb misses`). Search
// itself never records: `ivrctl kb search` and tests search freely.
//
// An Index is safe for concurrent use, and several processes may use the
// same database: the engine sees an import made by `ivrctl kb import` on
// its next search, without a restart.
package kb
