-- 0009: the knowledge base's index leaves the line's database. Each engine
-- keeps it in a SQLite file of its own (DATA_DIR/kb.db, package flows/kb),
-- rebuilt from the articles that ship with the flows; only the misses
-- (kb_misses), which every engine adds to, stay here.

DROP TABLE kb_fts;
DROP TABLE kb_articles;
DROP TABLE kb_terms;
DROP TABLE kb_terms_del;
DROP TABLE kb_synonyms;
DROP TABLE kb_meta;
