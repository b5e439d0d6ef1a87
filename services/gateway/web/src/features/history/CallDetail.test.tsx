import { render, screen } from '@testing-library/react';

import { ExtractionView } from './CallDetailPage';

describe('ExtractionView', () => {
  it('shows each state of the extraction', () => {
    const { rerender } = render(<ExtractionView data={{ status: 'running', claimed_by: 'r1', claimed_at: 1 }} />);
    expect(screen.getByRole('status')).toHaveTextContent('in progress');
    rerender(<ExtractionView data={{ status: 'ok', summary: 'Booked a table.', intent: 'booking', entities: { party: 2 }, custom: {} }} />);
    expect(screen.getByText('Booked a table.')).toBeInTheDocument();
    expect(screen.getByText('booking')).toBeInTheDocument();
    expect(screen.getByText(/"party": 2/)).toBeInTheDocument();
    rerender(<ExtractionView data={{ status: 'failed', attempts: 2, errors: ['timeout'] }} />);
    expect(screen.getByText(/failed after 2 attempt/)).toBeInTheDocument();
    rerender(<ExtractionView data={null} />);
    expect(screen.getByText(/No extraction/)).toBeInTheDocument();
  });
});
