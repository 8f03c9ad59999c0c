package flows

// EngineIDs are the ids the engine's Go code says (for the tests).
var EngineIDs = engineIDs
