-- The flow of `ivrbench -speech` (bench/cmd/ivrbench, the realistic speech
-- run): the shipped main menu (flows/main.lua's options, with their
-- synonyms) asked again and again, with a long prompt the caller may
-- interrupt, so that every utterance of the bench's callers answers a
-- question. What the line understood is in each call's events
-- (`speech.result tag ...`), which ivrbench scores against what was said.
local MENU = {
  { id = "identity_card", key = "1", say = { ro = "cartea de identitate", en = "the identity card" },
    synonyms = { "buletin", "buletinul", "carte de identitate", "cartea electronica", "CEI", "act de identitate",
                 "identity card", "ID card", "ID" } },
  { id = "passport", key = "2", say = { ro = "pașaport", en = "passport" },
    synonyms = { "pasaport", "pasaportul", "passport" } },
  { id = "portal_account", key = "3", say = { ro = "contul de pe portal", en = "your portal account" },
    synonyms = { "cont", "contul", "portal", "parola", "parolă", "account", "password", "login" } },
  { id = "online_request", key = "4", say = { ro = "o cerere online", en = "an online request" },
    synonyms = { "cerere online", "cerere", "depun o cerere", "online request", "application", "submit" } },
  { id = "request_status", key = "5", say = { ro = "stadiul unei solicitări", en = "the status of a request" },
    synonyms = { "stadiul", "stadiu", "status", "solicitare", "numar de inregistrare", "tichet", "ticket", "where is my request" } },
  { id = "english", key = "9", say = { ro = "English", en = "Romanian" },
    synonyms = { "english", "engleza", "in engleza", "romana", "romanian", "limba romana" } },
}

local PROMPT = {
  ro = "Spuneți pe scurt cu ce vă putem ajuta: cartea de identitate, pașaportul, contul de pe portal, " ..
       "o cerere online sau stadiul unei solicitări. Puteți vorbi oricând, nu trebuie să așteptați sfârșitul acestui mesaj.",
}

while true do
  ask{ prompt = PROMPT, options = MENU, retries = 0, timeout = 30, barge_in = true,
       confirm_below = 0, operator = false, no_match = "", no_input = "" }
end
