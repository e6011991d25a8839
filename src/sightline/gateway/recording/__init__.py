"""Recording: a gateway call captured as a Generation (through ``sightline.mapping``) and handed to the
single writer in small commits."""
