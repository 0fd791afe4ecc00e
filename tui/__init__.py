"""trainconsole's Textual console."""
