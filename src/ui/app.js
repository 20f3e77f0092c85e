// The search page (README, "Search page").
