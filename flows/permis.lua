-- permis.lua: the line for driving licences and vehicle registration,
-- routed on its own number (flows.routes: "1920" = "permis.lua").
-- Romanian first, English with key 9. Answers come from the knowledge base
-- (service driving_licence); a question about the caller's own file needs
-- the national ID number (CNP), asked as a sensitive answer, then an
-- operator. The API is described in docs/flows.md.

-- The main question: the words to say only where the line hears words
-- (call.speech); the embedded recognizer hears the options' phrases, so
-- the prompt names them.
local function menu_prompt()
  if call.speech then
    return { ro = "Spuneți permis, înmatriculare sau dosar, ori apăsați 1, 2 sau 3; un operator, 0.",
             en = "Say licence, registration or file, or press 1, 2 or 3. For an operator, press 0." }
  end
  return { ro = "Permis, apăsați 1; înmatriculări, 2; dosarul dumneavoastră, 3; un operator, 0.",
           en = "For the licence, press 1; vehicles, 2; your file, 3; an operator, 0." }
end

local MENU = {
  { id = "licence", key = "1", say = { ro = "permisul de conducere", en = "the driving licence" },
    synonyms = { "permis", "permisul", "permis de conducere", "permis auto", "carnet", "driving licence", "licence", "license" } },
  { id = "vehicle", key = "2", say = { ro = "înmatricularea", en = "vehicle registration" },
    synonyms = { "înmatriculare", "inmatriculare", "mașina", "masina", "vehicul", "plăcuțe", "registration", "car", "vehicle" } },
  { id = "file", key = "3", say = { ro = "dosarul meu", en = "my file" },
    synonyms = { "dosar", "dosarul", "stadiul dosarului", "my application", "file" } },
  { id = "english", key = "9", say = { ro = "English", en = "Romanian" },
    synonyms = { "english", "engleza", "romana", "romanian" } },
}

-- Sub-menus: each option names the article that answers it.
local TOPICS = {
  licence = {
    -- lint: long below: the caller chose the topic and waits for its five keys
    prompt = { ro = "Despre permis: preschimbare, apăsați 1; reînnoire, 2; pierdut sau furat, 3; examenul, 4; permisul internațional, 5.", -- lint: long
               en = "About the licence: exchange, press 1; renewal, 2; lost or stolen, 3; the exam, 4; the international permit, 5." }, -- lint: long
    options = {
      { id = "driving-licence-exchange", key = "1", say = { ro = "preschimbare", en = "exchange" }, synonyms = { "permis străin", "schimb", "foreign licence" } },
      { id = "driving-licence-renewal", key = "2", say = { ro = "reînnoire", en = "renewal" }, synonyms = { "expirat", "a expirat", "expired", "renew" } },
      { id = "driving-licence-lost", key = "3", say = { ro = "pierdut sau furat", en = "lost or stolen" }, synonyms = { "pierdut", "furat", "lost", "stolen" } },
      { id = "driving-licence-exam", key = "4", say = { ro = "examenul", en = "the exam" }, synonyms = { "examen", "proba", "exam", "test" } },
      { id = "driving-licence-international", key = "5", say = { ro = "permisul internațional", en = "the international permit" }, synonyms = { "internațional", "international" } },
    },
  },
  vehicle = {
    prompt = { ro = "Despre vehicule: înmatriculare, apăsați 1; radiere, 2; plăcuțe pierdute sau deteriorate, 3; numere provizorii, 4.", -- lint: long
               en = "About vehicles: registration, press 1; deregistration, 2; lost or damaged plates, 3; temporary plates, 4." }, -- lint: long
    options = {
      { id = "vehicle-registration", key = "1", say = { ro = "înmatriculare", en = "registration" }, synonyms = { "înmatriculez", "mașină nouă", "register" } },
      { id = "vehicle-deregistration", key = "2", say = { ro = "radiere", en = "deregistration" }, synonyms = { "radiez", "casare", "deregister" } },
      { id = "vehicle-plates", key = "3", say = { ro = "plăcuțe", en = "plates" }, synonyms = { "plăcuța", "numere pierdute", "number plates" } },
      { id = "vehicle-temporary", key = "4", say = { ro = "numere provizorii", en = "temporary plates" }, synonyms = { "provizorii", "numere roșii", "temporary" } },
    },
  },
}

-- An operator: a ticket with what was gathered, then the queue, or outside
-- working hours the ticket's number and a call back.
function on_operator()
  operator("Apelantul a cerut un operator pe linia permiselor de conducere.")
end

-- did it help? no: an operator; yes: anything else?
local function helped()
  local ok = ask_yes_no{ ro = "V-a ajutat acest răspuns?", en = "Did this answer help you?" }
  if not ok then on_operator() end
  if not ask_yes_no{ ro = "Vă mai putem ajuta cu altceva?", en = "Can we help you with anything else?" } then
    say{ ro = "Vă mulțumim pentru apel. La revedere!", en = "Thank you for calling. Goodbye!" }
    hangup("resolved")
  end
end

local function answer(id)
  local a = kb.get(id)
  if not a then
    say{ ro = "Nu am găsit informațiile cerute.", en = "I could not find that information." }
    on_operator()
  end
  vars.articles = (vars.articles and (vars.articles .. ",") or "") .. a.id
  say(a.spoken)
  helped()
end

-- a question in the caller's words, searched in this line's service only.
local function question(text)
  vars.question = text
  local top = kb.search(text, { service = "driving_licence", limit = 2 })[1]
  if top and not top.confident and top.score >= 0.3 then
    if not ask_yes_no{ ro = "Întrebați despre: " .. top.title .. "?", en = "Are you asking about: " .. top.title .. "?" } then top = nil end
  elseif top and not top.confident then
    top = nil
  end
  if not top then
    say{ ro = "Nu am găsit un răspuns la această întrebare.", en = "I could not find an answer to that question." }
    on_operator()
  end
  answer(top.id)
end

-- A sentence that names a topic ("mi-au furat plăcuțele") picks that
-- option, but it may already be a question the knowledge base answers:
-- answer it without the sub-menu.
local function direct(r)
  if r.how ~= "speech" then return false end
  local words = 0
  for _ in string.gmatch(r.text, "%S+") do words = words + 1 end
  if words < 3 then return false end
  local top = kb.search(r.text, { service = "driving_licence", limit = 1 })[1]
  if not (top and top.confident) then return false end
  vars.question = r.text
  answer(top.id)
  return true
end

local function topic(id)
  local t = TOPICS[id]
  local r = ask{ prompt = t.prompt, options = t.options, free = true }
  if not r then return on_operator() end
  if not r.option then return question(r.text) end
  answer(r.option)
end

-- the caller's own file: the CNP, read back, then an operator with it.
local function my_file()
  local cnp = ask_digits{
    prompt = { ro = "Pentru dosarul dumneavoastră, tastați codul numeric personal, cele 13 cifre, apoi tasta diez.",
               en = "For your file, key in your personal numeric code, the 13 digits, then the hash key." },
    min = 13, max = 13, confirm = true, sensitive = true }
  if not cnp then return on_operator() end
  vars.cnp = cnp
  vars.classification = "file_status"
  operator("Apelantul întreabă de stadiul dosarului.")
end

-- the call: every ticket of this line is about driving licences and vehicles
vars.service = "driving_licence"
if call.lang == "ro" then
  say{ "Bună ziua! Permise de conducere și înmatriculări.", { lang = "en", text = "For English, press 9." } }
else
  say("Hello! Driving licences and vehicle registration.")
end
while true do
  local r = ask{
    prompt = menu_prompt(),
    options = MENU, free = true,
  }
  if not r then
    on_operator()
  elseif r.option == "english" then
    if call.lang == "ro" then set_language("en") else set_language("ro") end
  elseif r.option == "file" then
    my_file()
  elseif r.option and direct(r) then
    -- answered
  elseif r.option then
    vars.classification = r.option
    topic(r.option)
  else
    question(r.text)
  end
end
