"""What every HTML report shares: inline SVG charts (`charts`), nothing fetched at run time."""
