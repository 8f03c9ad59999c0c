-- 0014 is reserved for another branch's migration. This placeholder only
-- keeps the numbering without gaps on the e-mail branch; drop this file
-- when merging (the other branch brings the real 0014).
SELECT 1;
